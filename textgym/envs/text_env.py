"""The single-episode face of the text-generation engine, for ``gym.make``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from textgym.envs.generation_batch import GenerationBatch, StepOutcome, make_batch
from textgym.kl import KLController
from textgym.models import ModelBundle
from textgym.rewards.protocol import RewardFn
from textgym.task import Example, Task


def token_spaces(length: int, vocab_size: int) -> spaces.Dict:
    """The observation space: token ids and their attention mask, both int64 ``(length,)``."""
    return spaces.Dict(
        {
            "input_ids": spaces.Box(0, vocab_size - 1, shape=(length,), dtype=np.int64),
            "attention_mask": spaces.Box(0, 1, shape=(length,), dtype=np.int64),
        }
    )


class TextEnvFace:
    """What callers may read of the engine: the same attributes on :class:`TextEnv` and ``TextVectorEnv``.

    Reach them through wrappers with ``env.unwrapped``. Nothing outside ``textgym.envs`` touches the
    engine itself.
    """

    _engine: GenerationBatch

    @property
    def task(self) -> Task:
        return self._engine.task

    @property
    def model(self) -> ModelBundle:
        """The env's own model (the task's, or ``model=``): tokenizer, action space and default reference."""
        return self._engine.model

    @property
    def ref_model(self) -> ModelBundle | None:
        """The frozen KL reference; None when KL shaping is off."""
        return self._engine.ref

    @property
    def tokenizer(self) -> Any:
        return self._engine.tokenizer

    @property
    def kl_controller(self) -> KLController:
        """The KL coefficient's controller (``value``, ``update(kl, n)``, ``state_dict()``).

        With ``kl_update="caller"`` the env never moves it: the caller updates it, e.g. once per training
        iteration from a KL reduced across ranks.
        """
        return self._engine.kl

    @property
    def kl_coef(self) -> float:
        """The current KL coefficient (it moves under the adaptive controller)."""
        return self._engine.kl.value

    @property
    def kl_update(self) -> str:
        """``"env"``: the env moves an adaptive beta as episodes end; ``"caller"``: its caller does."""
        return self._engine.kl_update

    @property
    def prompt_budget(self) -> int:
        return self._engine.prompt_budget

    @property
    def generation_budget(self) -> int:
        return self._engine.generation_budget

    @property
    def vocab_size(self) -> int:
        """``V``: the model's logits dimension, the size of the action space."""
        return self._engine.vocab_size

    @property
    def pad_token_id(self) -> int:
        return self._engine.pad_token_id

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self._engine.model.eos_token_ids

    @property
    def reward_fn(self) -> RewardFn:
        """The task's reward function, or the one given as ``reward_fn=``: ``fn(prompts, completions,
        **columns) -> list[float]``."""
        return self._engine.reward_fn

    @property
    def uses_chat_template(self) -> bool:
        """Whether prompts reach the model inside the tokenizer's chat template, as a user turn."""
        return self._engine.use_chat_template

    @property
    def examples(self) -> list[Example | None]:
        """The example (prompt and reward columns) of each env's current episode; None before a reset."""
        return list(self._engine.examples)

    @property
    def pool(self) -> Sequence[Example]:
        """The split's whole example pool, which ``reset(options={"example_index": ...})`` indexes
        (:meth:`textgym.task.Task.examples`; a task without a finite pool raises NotImplementedError)."""
        return self._engine.pool()

    def reference_next_logits(self) -> torch.Tensor:
        """``(num_envs, V)`` float32: the reference model's logits for each env's next token.

        Free with per-step reference delivery (the env has already computed them for the KL of the next
        step): what an action mask from the reference (RL4LMs' NLPO top-k) reads. An env that has
        ended sits at its last values until it is reset.

        Raises:
            RuntimeError: without a per-step reference (``kl_coef=0``, or ``ref_logprobs="episode_end"``).
        """
        if self._engine.ref_lm is None:
            raise RuntimeError(
                "reference_next_logits needs the reference model stepped with the env: make the env with "
                f"kl_coef > 0 and ref_logprobs='step' (got kl_coef={self.kl_coef}, "
                f"ref_logprobs={self._engine.ref_timing!r})"
            )
        return self._engine.ref_lm.next_logits[:, : self.vocab_size].float()

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt as the model sees it (chat template included), after the overflow policy."""
        return self._engine.encode_prompt(prompt)


class TextEnv(TextEnvFace, gym.Env[dict[str, np.ndarray], np.int64]):
    """Token-by-token text generation as a Gymnasium environment.

    ## Description

    The state is a prompt plus the tokens generated so far; each action appends one vocabulary token.
    When the episode ends, the task's reward function scores the finished completion, and the reward is
    shaped by the KL divergence to a frozen reference model. Subclasses bind a task and carry its manual.

    ## Observation Space

    ``Dict(input_ids=Box(0, V - 1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`` with
    ``L = prompt_budget + generation_budget``. The prompt is right-aligned in the first ``prompt_budget``
    columns (left padding); generated token ``t`` is at column ``prompt_budget + t`` (right padding).
    ``attention_mask`` is 1 on real tokens. Padding holds the tokenizer's pad id (its EOS when it has no
    pad token): read the mask, not the ids.

    ## Action Space

    ``Discrete(V)``, where ``V`` is the model's logits dimension (it can exceed ``len(tokenizer)``).
    An action is an integer (Python, NumPy, or a 0-d integer tensor).

    ## Rewards

    Sparse and terminal, shaped by KL. With ``beta`` the KL coefficient and ``a_t`` the step's token:

    - every step pays ``non_score_reward``: ``-beta * (log pi(a_t|s_t) - log pi_ref(a_t|s_t))`` when the
      agent has announced ``log pi(a_t|s_t)`` with :meth:`set_action_logprobs` before the step, otherwise
      ``beta * log pi_ref(a_t|s_t)``. In the second case the agent completes the exact KL-shaped reward by
      adding ``-beta * log pi(a_t|s_t)`` itself (in expectation, an entropy bonus of weight ``beta``).
    - the final step also pays the task's ``score`` of the completion, whichever way the episode ends.

    With ``kl_coef=0`` (and no ``kl_target``) there is no shaping and no reference model is loaded.
    With ``ref_logprobs="episode_end"`` the reference runs once per episode (one teacher-forced pass)
    instead of once per step: every step before the last pays 0 and the last pays the score plus the
    episode's summed ``non_score_reward``; ``info["non_score_rewards"]`` hands over the per-token terms.

    ## Starting State

    A prompt drawn with ``self.np_random`` from the task's ``split`` ("train" or "test"), or, with
    ``reset(options={"example_index": i})``, example ``i`` of the split's pool
    (:meth:`textgym.task.Task.examples`) for tasks that have a finite one.

    ## Episode End

    The episode terminates when the agent emits an EOS token or completes a stop sequence, or when
    ``generation_budget`` tokens have been generated. A budget ending is reported as ``terminated=True``,
    not ``truncated``: the budget is part of the task and visible in the observation, the score is final,
    and bootstrapping a value after it (as SB3 does on truncation) would be wrong. ``truncated`` is only
    ever set by wrappers such as ``TimeLimit``. ``info["stopped"]`` tells an EOS or stop ending (True)
    from a budget ending (False). Calling :meth:`step` after the end without :meth:`reset` is an error.

    ## Info

    Every step: ``non_score_reward``; in per-step mode with KL shaping ``ref_logprob``; with an announced
    log-prob also ``policy_logprob`` and ``kl`` (k1). The final step adds ``score``, ``completion``,
    ``completion_length`` and ``stopped``; with KL shaping ``kl_coef`` (the beta in force) and, when
    every step announced its log-prob, ``episode_kl`` (summed k1, which shaped the reward) and
    ``episode_kl_k3`` (summed k3, for logging); in deferred mode ``ref_logprobs`` and
    ``non_score_rewards`` per token. All values are plain Python or NumPy.

    ## Arguments

    - ``model``: a model name or local folder for :func:`textgym.models.load_model`, or a ``ModelBundle``.
      Defaults to the task's model.
    - ``reward_fn``: ``fn(prompts, completions, **columns) -> list[float]`` or ``"pkg.module:name"``.
      Defaults to the task's reward.
    - ``reward_model``: instead of ``reward_fn``, the folder of a reward model (a sequence-classification
      model; one trained by :func:`textgym.preferences.train_reward_model` scores with its saved
      normalisation and text format), read by :class:`textgym.rewards.SequenceClassifierReward`.
    - ``ref_model``: the reference; defaults to the (frozen, shared) policy model. Must share its tokenizer.
    - ``kl_coef``: ``beta``; the task's default when None. ``kl_target``/``kl_horizon``: turn on the
      adaptive (Ziegler) controller, ``kl_target`` in nats per sequence.
    - ``kl_update``: ``"env"`` (default: the adaptive controller moves as episodes end) or ``"caller"``
      (the env leaves it alone; the caller updates ``env.kl_controller``, e.g. once per iteration).
    - ``ref_logprobs``: ``"step"`` (default) or ``"episode_end"``, see Rewards.
    - ``prompt_budget``, ``generation_budget``: in tokens; the task's defaults when None.
    - ``prompt_overflow``: ``"truncate"`` (keep the last ``prompt_budget`` tokens, with a warning) or
      ``"error"``.
    - ``chat_template``: wrap prompts in the tokenizer's chat template; default: when it has one.
    - ``stop_sequences``: strings that end the episode; the reward sees the text before them.
    - ``split``: ``"train"`` or ``"test"``. ``device``: where tensors and models live.
    - Any other keyword goes to the task's constructor.

    ```python
    import gymnasium as gym
    import textgym

    env = gym.make("textgym/Copy-v1", kl_coef=0.05)
    obs, info = env.reset(seed=0)
    ```

    ## Version History

    - v0: Initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}
    task_class: ClassVar[type[Task] | None] = None  # the task a subclass binds

    def __init__(self, task: Task | str | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        self.render_mode = render_mode  # checked by render(), as Gymnasium's own envs do
        self._engine: GenerationBatch = make_batch(task, self.task_class, 1, kwargs)
        self.observation_space = token_spaces(self._engine.length, self._engine.vocab_size)
        self.action_space = spaces.Discrete(self._engine.vocab_size)

    def set_action_logprobs(self, logprob: float) -> None:
        """Announce ``log pi(a_t|s_t)`` of the action the next :meth:`step` receives (exact KL shaping).

        Reach it through wrappers with ``env.unwrapped.set_action_logprobs(lp)``.
        """
        self._engine.set_action_logprobs(torch.tensor([float(logprob)]))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        index = (options or {}).get("example_index")
        examples = None if index is None else self._engine.pool_examples([index])
        self._engine.reset_rows([0], [self.np_random], examples)
        if self.render_mode == "human":
            self.render()
        return self._observation(), {"prompt": self._engine.examples[0]["prompt"]}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not bool(self._engine.running[0]):
            raise RuntimeError(
                "step() called after the episode ended (or before reset()): call reset() first"
            )
        outcome = self._engine.step(
            self._engine.validate_actions([_scalar_action(action)]), self._engine.running.clone()
        )
        if self.render_mode == "human":
            self.render()
        terminated = bool(outcome.terminated[0])
        return (
            self._observation(),
            float(outcome.reward[0]),
            terminated,
            False,
            _single_info(outcome, terminated),
        )

    def render(self) -> str | None:
        if not can_render(self.render_mode, self.metadata["render_modes"]):
            return None
        text = self._engine.render_text(0)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _observation(self) -> dict[str, np.ndarray]:
        return {key: value[0].cpu().numpy() for key, value in self._engine.observation().items()}


def can_render(render_mode: str | None, render_modes: list[str]) -> bool:
    """False (with Gymnasium's warning) without a render mode; a ValueError for an unsupported one.

    Unsupported modes are refused here rather than at construction because SB3's ``make_vec_env``
    asks every env for ``render_mode="rgb_array"`` and only falls back on a TypeError.
    """
    if render_mode is None:
        gym.logger.warn("You are calling render method without specifying any render mode.")
        return False
    if render_mode not in render_modes:
        raise ValueError(f"render_mode {render_mode!r} is not supported: expected one of {render_modes}")
    return True


def _scalar_action(action: Any) -> int:
    """An integer action, or a TypeError naming what came instead."""
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    array = np.asarray(action)
    if (
        array.shape not in ((), (1,))
        or isinstance(action, bool)
        or not np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(
            f"action must be one integer token id (int, numpy integer or 0-d integer tensor), got {action!r}"
            f" of type {type(action).__name__}"
            + (f" and dtype {array.dtype}" if array.dtype != object else "")
        )
    return int(array.reshape(()))


def _single_info(outcome: StepOutcome, terminated: bool) -> dict[str, Any]:
    info: dict[str, Any] = {key: float(value[0]) for key, value in outcome.info.items()}
    if terminated:
        for key, value in outcome.final.items():
            item = value[0]
            if isinstance(item, torch.Tensor):
                item = item.item() if item.ndim == 0 else item.cpu().numpy()
            info[key] = item
        length = info["completion_length"] = int(info["completion_length"])
        info["stopped"] = bool(info["stopped"])
        for key in ("ref_logprobs", "non_score_rewards"):
            if key in info:
                info[key] = info[key][:length]
    return info
