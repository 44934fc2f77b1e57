"""The native batched face of the text-generation engine, for ``gym.make_vec``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.envs.generation_batch import GenerationBatch, make_batch
from textgym.envs.text_env import TextEnv, TextEnvFace, can_render, token_spaces
from textgym.importing import import_object
from textgym.task import Task


def make_vector_env(env_class: type[TextEnv] | str, num_envs: int, **kwargs: Any) -> TextVectorEnv:
    """The native vector face of a :class:`TextEnv` subclass (or its import string): same task, batched.

    Registration makes each task's vector entry point from this, so a task writes its env class once.
    """
    if isinstance(env_class, str):
        env_class = import_object(env_class)
    if not (isinstance(env_class, type) and issubclass(env_class, TextEnv)):
        raise TypeError(f"expected a TextEnv subclass or its import string, got {env_class!r}")
    envs = TextVectorEnv(num_envs, task=kwargs.pop("task", env_class.task_class), **kwargs)
    envs.env_class = env_class
    return envs


class TextVectorEnv(TextEnvFace, VectorEnv):
    """``num_envs`` text-generation episodes stepped together, their state kept as torch tensors.

    Same task, arguments, spaces, rewards and episode ends as :class:`textgym.envs.TextEnv` and the
    task's env class (``env_class``; its docstring is the task's manual), batched:

    - observations, rewards, ``terminated``, ``truncated`` and info values are torch tensors on
      ``device``, or NumPy arrays with ``array_backend="numpy"``; actions may be a tensor, array or list;
    - ``set_action_logprobs`` takes a ``(num_envs,)`` tensor;
    - infos follow Gymnasium's vector convention: each value has a leading ``num_envs`` axis and a
      boolean ``"_key"`` mask tells which envs it holds a value for (per-step keys: the envs that
      stepped; episode-end keys: the envs that terminated).

    ## Seeding

    ``reset(seed=s)`` seeds env ``i`` with ``s + i`` (a list gives one seed per env), like
    ``SyncVectorEnv``: env ``i`` draws the same prompts as a single env reset with seed ``s + i``.
    ``reset(options={"example_index": idx})`` instead starts env ``i`` on example ``idx[i]`` of the task's
    pool (:meth:`textgym.task.Task.examples`; one index per env, read for the envs being reset): how an
    agent goes through a finite task without replacement (``prompt_order="epochs"``).

    ## Autoreset

    ``autoreset_mode`` is ``AutoresetMode.NEXT_STEP`` (Gymnasium's default) or ``DISABLED``:

    - NEXT_STEP: the step after an env terminates resets it; its action is ignored, its reward is 0 and
      the new episode's first observation comes back.
    - DISABLED: an env that terminated sits out (its actions are ignored, reward 0, ``terminated`` False)
      until ``reset(options={"reset_mask": mask})`` restarts it. This is the natural mode for LM agents
      that roll out a batch of episodes and then update, and the one TorchRL's ``GymWrapper`` takes.

    The mode is ``metadata["autoreset_mode"]``, also readable as the ``autoreset_mode`` attribute.

    ```python
    import gymnasium as gym
    import textgym

    envs = gym.make_vec("textgym/Copy-v1", num_envs=8, vectorization_mode="vector_entry_point", device="cpu")
    obs, infos = envs.reset(seed=0)
    ```
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        task: Task | str | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        array_backend: Literal["torch", "numpy"] = "torch",
        **kwargs: Any,
    ) -> None:
        if array_backend not in ("torch", "numpy"):
            raise ValueError(f"array_backend must be 'torch' or 'numpy', got {array_backend!r}")
        self.array_backend = array_backend
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or DISABLED, got {autoreset_mode}")
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.render_mode = render_mode
        self._engine: GenerationBatch = make_batch(task, None, num_envs, kwargs)
        self.env_class: type[TextEnv] = TextEnv  # the single env whose manual applies (make_vector_env)
        self.num_envs = num_envs
        self.single_observation_space = token_spaces(self._engine.length, self._engine.vocab_size)
        self.single_action_space = spaces.Discrete(self._engine.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.device = self._engine.device
        self._rngs: list[np.random.Generator] | None = None
        self._autoreset_rows: list[int] = []  # NEXT_STEP: envs that ended last step, reset by this one

    @property
    def autoreset_mode(self) -> AutoresetMode:
        """``metadata["autoreset_mode"]``, as an attribute: TorchRL's ``GymWrapper`` reads it there."""
        return self.metadata["autoreset_mode"]

    def set_action_logprobs(self, logprobs: torch.Tensor) -> None:
        """Announce ``log pi(a_t|s_t)`` for the ``(num_envs,)`` actions the next :meth:`step` receives."""
        self._engine.set_action_logprobs(logprobs)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if seed is not None or self._rngs is None:
            seeds = _env_seeds(seed, self.num_envs)
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        mask = (options or {}).get("reset_mask")
        if mask is None:
            rows = list(range(self.num_envs))
        else:
            mask = torch.as_tensor(mask, dtype=torch.bool).reshape(-1)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {tuple(mask.shape)}")
            rows = mask.nonzero()[:, 0].tolist()
        examples = None
        if (options or {}).get("example_index") is not None:
            index = list(options["example_index"])
            if len(index) != self.num_envs:
                raise ValueError(
                    f"example_index must hold {self.num_envs} indices (one per env), got {index}"
                )
            examples = self._engine.pool_examples([index[r] for r in rows])
        if rows:
            self._engine.reset_rows(rows, [self._rngs[r] for r in rows], examples)
        self._autoreset_rows = [r for r in self._autoreset_rows if r not in rows]
        if self.render_mode == "human":
            self.render()
        prompts = np.array([ex["prompt"] if ex else "" for ex in self._engine.examples], dtype=object)
        return self._out(self._engine.observation()), {"prompt": prompts, "_prompt": self._mask(rows)}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._rngs is None:
            raise RuntimeError("step() called before reset(): call reset() first")
        actions = self._engine.validate_actions(actions)
        if not self._engine.num_running and not self._autoreset_rows:
            raise RuntimeError("step() called when every episode has ended: call reset() first")
        stepping = self._engine.running.clone()
        outcome = self._engine.step(actions, stepping)
        if self._autoreset_rows:  # NEXT_STEP: the envs that ended last step start over now
            self._engine.reset_rows(self._autoreset_rows, [self._rngs[r] for r in self._autoreset_rows])
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            self._autoreset_rows = outcome.ended_rows

        infos: dict[str, Any] = {}
        for key, value in outcome.info.items():
            infos[key], infos[f"_{key}"] = value, stepping
        for key, value in outcome.final.items():
            infos[key], infos[f"_{key}"] = value, outcome.terminated
        if self.render_mode == "human":
            self.render()
        truncated = torch.zeros_like(outcome.terminated)
        return self._out((self._engine.observation(), outcome.reward, outcome.terminated, truncated, infos))

    def _out(self, value: Any) -> Any:
        """Outputs as torch tensors on the device, or as NumPy arrays with ``array_backend="numpy"``."""
        if self.array_backend == "torch":
            return value
        if isinstance(value, torch.Tensor):
            return value.cpu().numpy()
        if isinstance(value, dict):
            return {key: self._out(item) for key, item in value.items()}
        if isinstance(value, tuple):
            return tuple(self._out(item) for item in value)
        return value

    def render(self) -> tuple[str, ...] | None:
        if not can_render(self.render_mode, self.metadata["render_modes"]):
            return None
        texts = tuple(self._engine.render_text(i) for i in range(self.num_envs))
        if self.render_mode == "human":
            print("\n".join(f"[{i}] {text}" for i, text in enumerate(texts)))
            return None
        return texts

    def _mask(self, rows: list[int]) -> np.ndarray:
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[rows] = True
        return mask


def _env_seeds(seed: int | list[int | None] | None, num_envs: int) -> list[int | None]:
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"expected {num_envs} seeds, got {len(seeds)}: {seeds}")
    return seeds
