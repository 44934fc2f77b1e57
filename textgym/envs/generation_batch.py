"""B text-generation episodes held as torch tensors: the one engine behind the single and the vector env.

Observation layout (length ``L = prompt_budget + generation_budget``): the prompt is right-aligned in
the first ``prompt_budget`` columns (left padding) and generated token ``t`` sits at column
``prompt_budget + t`` (right padding). So a token's column never moves, and ``attention_mask`` marks
the real tokens.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from textgym.importing import import_object
from textgym.kl import kl_k1, kl_k3, make_kl_controller
from textgym.models import CachedLM, ModelBundle, load_model, tiny_model
from textgym.models.cached_lm import token_logprobs
from textgym.rewards import RewardFn, SequenceClassifierReward, resolve_reward, score_completions
from textgym.task import TINY, Example, Task

ModelSpec = str | ModelBundle | None
RefTiming = Literal["step", "episode_end"]
KLUpdate = Literal["env", "caller"]


@dataclass
class StepOutcome:
    """What one batched step produced. Tensors have a leading ``B`` axis and live on the batch's device."""

    reward: torch.Tensor  # (B,) float32; 0 for rows that did not step
    terminated: torch.Tensor  # (B,) bool
    ended_rows: list[int]  # indices of the rows that terminated, on the host
    info: dict[str, torch.Tensor] = field(default_factory=dict)  # (B,) per-step values, valid where stepped
    final: dict[str, Any] = field(default_factory=dict)  # per-episode values, valid where terminated


class GenerationBatch:
    """State and transition of ``num_envs`` episodes of token-by-token generation.

    See :class:`textgym.envs.TextEnv` for the meaning of every argument.
    """

    def __init__(
        self,
        task: Task,
        num_envs: int,
        *,
        model: ModelSpec = None,
        reward_fn: RewardFn | str | None = None,
        reward_model: str | os.PathLike[str] | None = None,
        ref_model: ModelSpec = None,
        kl_coef: float | None = None,
        kl_target: float | None = None,
        kl_horizon: int = 10_000,
        kl_update: KLUpdate = "env",
        ref_logprobs: RefTiming = "step",
        prompt_budget: int | None = None,
        generation_budget: int | None = None,
        prompt_overflow: Literal["truncate", "error"] = "truncate",
        chat_template: bool | None = None,
        stop_sequences: tuple[str, ...] | list[str] = (),
        split: str = "train",
        device: str | torch.device = "cpu",
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if ref_logprobs not in ("step", "episode_end"):
            raise ValueError(f"ref_logprobs must be 'step' or 'episode_end', got {ref_logprobs!r}")
        if kl_update not in ("env", "caller"):
            raise ValueError(f"kl_update must be 'env' or 'caller', got {kl_update!r}")
        if prompt_overflow not in ("truncate", "error"):
            raise ValueError(f"prompt_overflow must be 'truncate' or 'error', got {prompt_overflow!r}")
        task.check_split(split)
        self.task, self.num_envs, self.split = task, num_envs, split
        self._pool: Sequence[Example] | None = None
        self.device = torch.device(device)
        self.prompt_overflow, self.ref_timing, self.kl_update = prompt_overflow, ref_logprobs, kl_update
        self.stop_sequences = tuple(stop_sequences)
        if any(not isinstance(stop, str) or not stop for stop in self.stop_sequences):
            raise ValueError(f"stop_sequences must be non-empty strings, got {stop_sequences!r}")
        self.prompt_budget = int(prompt_budget or task.prompt_budget)
        self.generation_budget = int(generation_budget or task.generation_budget)
        if self.prompt_budget < 1 or self.generation_budget < 1:
            raise ValueError(
                f"budgets must be >= 1, got prompt_budget={self.prompt_budget}, "
                f"generation_budget={self.generation_budget}"
            )

        self.model = (
            self._resolve_model(model, "model") if model is not None else task.build_model(str(self.device))
        )
        self._check_device(self.model, "model")
        self.tokenizer = self.model.tokenizer
        self.vocab_size = self.model.vocab_size
        self.pad_token_id = self.model.pad_token_id
        self.eos = torch.tensor(self.model.eos_token_ids, dtype=torch.long, device=self.device)
        self.use_chat_template = (
            bool(self.tokenizer.chat_template) if chat_template is None else chat_template
        )
        if self.use_chat_template and not self.tokenizer.chat_template:
            raise ValueError(
                f"chat_template=True but the tokenizer of {self.model.name!r} has no chat template"
            )

        if reward_fn is not None and reward_model is not None:
            raise ValueError(
                f"pass reward_fn or reward_model, not both (got reward_fn={reward_fn!r}, "
                f"reward_model={reward_model!r})"
            )
        if reward_model is not None:  # a trained reward model's folder: scored with its normalisation
            reward_fn = SequenceClassifierReward(reward_model, device=self.device)
        self.reward_fn = resolve_reward(reward_fn) if reward_fn is not None else task.reward
        self.kl = make_kl_controller(
            task.default_kl_coef if kl_coef is None else kl_coef, kl_target, kl_horizon
        )
        shaping = self.kl.value > 0 or kl_target is not None
        self.ref: ModelBundle | None = None
        if shaping:  # no reference model is loaded when KL shaping is off
            self.ref = self.model if ref_model is None else self._resolve_model(ref_model, "ref_model")
            self._check_device(self.ref, "ref_model")
            if self.ref.vocab_size != self.vocab_size:
                raise ValueError(
                    f"ref_model {self.ref.name!r} has {self.ref.vocab_size} logits, the env's model "
                    f"{self.model.name!r} has {self.vocab_size}: they must share one tokenizer"
                )
        self.ref_lm = (
            CachedLM(self.ref.model, self.pad_token_id) if self.ref and ref_logprobs == "step" else None
        )

        B, P, T = num_envs, self.prompt_budget, self.generation_budget
        self.length = P + T
        self.input_ids = torch.full((B, P + T), self.pad_token_id, dtype=torch.long, device=self.device)
        self.attention_mask = torch.zeros((B, P + T), dtype=torch.long, device=self.device)
        self.gen_len = torch.zeros(B, dtype=torch.long, device=self.device)
        self.running = torch.zeros(B, dtype=torch.bool, device=self.device)  # episode started and not ended
        self.ref_logprobs = torch.zeros((B, T), dtype=torch.float32, device=self.device)
        self.policy_logprobs = torch.zeros((B, T), dtype=torch.float32, device=self.device)
        self.has_policy_logprobs = torch.zeros((B, T), dtype=torch.bool, device=self.device)
        self.examples: list[Example | None] = [None] * B
        self._pending_logprobs: torch.Tensor | None = None
        self._rows = torch.arange(B, device=self.device)
        self.num_running = 0  # host-side count of running episodes: spares a device sync per step

    # ----------------------------------------------------------------------------------------- models
    def _resolve_model(self, spec: ModelSpec, what: str) -> ModelBundle:
        if isinstance(spec, ModelBundle):
            return spec
        if isinstance(spec, str):
            if spec == TINY:
                return tiny_model(self.task.corpus(), device=self.device)
            return load_model(spec, device=self.device)
        raise TypeError(
            f"{what} must be a model name or path (str) or a textgym.models.ModelBundle, "
            f"got {type(spec).__name__}"
        )

    def _check_device(self, bundle: ModelBundle, what: str) -> None:
        if bundle.device.type != self.device.type or (
            self.device.index is not None and bundle.device.index != self.device.index
        ):
            raise ValueError(
                f"{what} {bundle.name!r} is on {bundle.device} but the environment was asked for "
                f"device={self.device}: move the model or pass device='{bundle.device}'"
            )

    # ------------------------------------------------------------------------------------------ reset
    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt as the model sees it, after the overflow policy."""
        if self.use_chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(prompt)["input_ids"]
        if not ids:
            raise ValueError(f"prompt {prompt!r} encodes to no tokens; a prompt needs at least one token")
        if len(ids) > self.prompt_budget:
            message = (
                f"prompt of {len(ids)} tokens exceeds prompt_budget={self.prompt_budget}: {prompt[:80]!r}"
            )
            if self.prompt_overflow == "error":
                raise ValueError(message + " (prompt_overflow='error'; raise prompt_budget or shorten it)")
            warnings.warn(message + "; keeping its last tokens (prompt_overflow='truncate')", stacklevel=4)
            ids = ids[-self.prompt_budget :]
        return ids

    def pool(self) -> Sequence[Example]:
        """The split's whole example pool (:meth:`Task.examples`), built on first use."""
        if self._pool is None:
            self._pool = self.task.examples(self.split)
        return self._pool

    def pool_examples(self, indices: Sequence[int]) -> list[Example]:
        """The pool's examples at ``indices`` (``reset(options={"example_index": ...})``).

        Raises:
            ValueError: naming an index outside the pool and the pool's size.
        """
        pool = self.pool()
        for i in indices:
            if isinstance(i, bool) or not (isinstance(i, (int, np.integer)) and 0 <= i < len(pool)):
                raise ValueError(
                    f"example_index {i!r} is outside the {self.split} pool of {self.task.name!r}: "
                    f"expected an integer in [0, {len(pool)})"
                )
        return [pool[int(i)] for i in indices]

    def reset_rows(
        self, rows: list[int], rngs: list[np.random.Generator], examples: list[Example] | None = None
    ) -> None:
        """Start new episodes in ``rows``: on ``examples`` when given, else each drawn from its generator."""
        if examples is None:
            examples = [self.task.sample(rng, self.split) for rng in rngs]
        encoded = [self.encode_prompt(ex["prompt"]) for ex in examples]
        P = self.prompt_budget
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        prompt_ids = torch.full((len(rows), P), self.pad_token_id, dtype=torch.long)
        prompt_mask = torch.zeros((len(rows), P), dtype=torch.long)
        for i, ids in enumerate(encoded):
            prompt_ids[i, P - len(ids) :] = torch.tensor(ids)
            prompt_mask[i, P - len(ids) :] = 1
        prompt_ids, prompt_mask = prompt_ids.to(self.device), prompt_mask.to(self.device)

        self.input_ids[index] = self.pad_token_id
        self.input_ids[index, :P] = prompt_ids
        self.attention_mask[index] = 0
        self.attention_mask[index, :P] = prompt_mask
        self.gen_len[index] = 0
        self.num_running += len(rows) - int(self.running[index].sum())
        self.running[index] = True
        self.ref_logprobs[index] = 0.0
        self.policy_logprobs[index] = 0.0
        self.has_policy_logprobs[index] = False
        for row, ex in zip(rows, examples, strict=True):
            self.examples[row] = ex

        if self.ref_lm is not None:
            width = int(prompt_mask.sum(-1).max())
            whole = len(rows) == self.num_envs
            if not whole and self.ref_lm.cache is None:
                raise RuntimeError("reset every env once before resetting a subset of them")
            self.ref_lm.prefill(
                prompt_ids[:, P - width :], prompt_mask[:, P - width :], rows=None if whole else index
            )

    # ------------------------------------------------------------------------------------------- step
    def set_action_logprobs(self, logprobs: torch.Tensor) -> None:
        """Record ``log pi(a_t | s_t)`` of the actions the next :meth:`step` receives, shape ``(B,)``."""
        logprobs = torch.as_tensor(logprobs, dtype=torch.float32, device=self.device).reshape(-1)
        if logprobs.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} action log-probs, got shape {tuple(logprobs.shape)}")
        low, high = torch.aminmax(logprobs)
        if not (-torch.inf < float(low) and float(high) <= 1e-4):  # NaN fails both comparisons
            raise ValueError(f"action log-probs must be finite and <= 0, got {logprobs.tolist()}")
        self._pending_logprobs = logprobs

    def step(self, actions: torch.Tensor, stepping: torch.Tensor) -> StepOutcome:
        """Append ``actions`` to the rows in ``stepping`` (all running), end episodes, pay rewards.

        The reward function runs before the step is committed: if it raises, the batch is as it was
        and the step can be retried.
        """
        B, P, T = self.num_envs, self.prompt_budget, self.generation_budget
        rows, t = self._rows, self.gen_len.clamp(max=T - 1)  # t: (B,) offset of the new token
        cols = P + t
        beta = self.kl.value
        logprobs = self._pending_logprobs

        is_eos = torch.isin(actions, self.eos)
        stopped = stepping & is_eos  # (B,) ended by EOS or a stop sequence
        ended = stepping & (is_eos | (self.gen_len + 1 >= T))
        step_ref = None
        if self.ref_lm is not None:  # (B,) log pi_ref(a_t | s_t) from the cached next-token logits
            logits = self.ref_lm.next_logits.float()
            step_ref = torch.log_softmax(logits, -1).gather(1, actions[:, None])[:, 0]

        # Write the new tokens in place. A running row's new column held padding, so if the reward
        # function fails, writing padding back where stepping undoes the step exactly.
        if self.num_running == B:  # lockstep rollouts: every row steps, no masking needed
            self.input_ids[rows, cols], self.attention_mask[rows, cols] = actions, 1
        else:
            self.input_ids[rows, cols] = torch.where(stepping, actions, self.input_ids[rows, cols])
            self.attention_mask[rows, cols] = torch.where(stepping, 1, self.attention_mask[rows, cols])
        try:
            final, ended = self._score_endings(stepping, stopped, ended, t)
        except BaseException:
            self.input_ids[rows, cols] = torch.where(stepping, self.pad_token_id, self.input_ids[rows, cols])
            self.attention_mask[rows, cols] = torch.where(stepping, 0, self.attention_mask[rows, cols])
            raise
        ended_rows = final.get("rows", [])

        # Commit.
        self._pending_logprobs = None
        self.gen_len = self.gen_len + stepping.long()
        # Rows that did not step have ended: their log-prob buffers are dead until reset_rows clears
        # them, so plain writes (no masking) are safe and cheaper.
        if step_ref is not None:
            self.ref_logprobs[rows, t] = step_ref
        if ended_rows and self.ref is not None and self.ref_timing == "episode_end":
            self.ref_logprobs[ended_rows] = self._teacher_forced_ref(
                self.input_ids[ended_rows], self.attention_mask[ended_rows]
            )
        if logprobs is not None:
            self.policy_logprobs[rows, t] = logprobs
            self.has_policy_logprobs[rows, t] = True
        self.running = self.running & ~ended
        self.num_running -= len(ended_rows)
        if self.ref_lm is not None and self.num_running:
            self.ref_lm.step(actions, None if self.num_running == B else self.running)

        # Rewards.
        if self.ref is not None and self.ref_timing == "step":
            non_score = beta * (step_ref - logprobs) if logprobs is not None else beta * step_ref
            reward = torch.where(stepping, non_score, 0.0)
            info = {"non_score_reward": non_score, "ref_logprob": step_ref}
            if logprobs is not None:
                info["policy_logprob"], info["kl"] = logprobs, kl_k1(logprobs, step_ref)
        else:
            reward = torch.zeros(B, dtype=torch.float32, device=self.device)
            info = {"non_score_reward": reward.clone()}
        if ended_rows:
            del final["rows"]
            reward += final["score"]
            if self.ref is not None:
                self._finish_kl(ended_rows, final, reward, beta)
        return StepOutcome(reward, ended, ended_rows, info, final)

    def _score_endings(
        self, stepping: torch.Tensor, stopped: torch.Tensor, ended: torch.Tensor, t: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """Find stop sequences, then score the episodes that end this step (tokens already written).

        Returns the episode-end figures (with ``"rows"``, the ended rows) and the updated ``ended``.
        """
        B = self.num_envs
        texts: dict[int, str] = {}
        if self.stop_sequences:  # decoding each step costs a host sync, paid only when stops are configured
            for r in (stepping & ~stopped).nonzero()[:, 0].tolist():
                text = self._decode(r, int(t[r]) + 1)
                cut = min((text.find(stop) for stop in self.stop_sequences if stop in text), default=-1)
                if cut >= 0:  # the reward sees the text before the stop sequence, as vLLM and TRL do
                    stopped[r], texts[r] = True, text[:cut]
            ended = ended | stopped
        ended_rows = ended.nonzero()[:, 0].tolist()
        if not ended_rows:
            return {}, ended
        completions = [texts[r] if r in texts else self._decode(r, int(t[r]) + 1) for r in ended_rows]
        examples = [self.examples[r] for r in ended_rows]
        columns = {key: [ex[key] for ex in examples] for key in examples[0] if key != "prompt"}
        scores = score_completions(self.reward_fn, [ex["prompt"] for ex in examples], completions, **columns)
        final: dict[str, Any] = {"rows": ended_rows}
        final["score"] = torch.zeros(B, dtype=torch.float32, device=self.device)
        final["score"][ended_rows] = torch.as_tensor(scores, dtype=torch.float32, device=self.device)
        final["completion"] = np.full(B, "", dtype=object)
        final["completion"][ended_rows] = completions
        final["completion_length"] = torch.where(ended, t + 1, torch.zeros_like(t))
        final["stopped"] = stopped
        return final, ended

    def _decode(self, row: int, length: int) -> str:
        """The completion's text as the reward sees it: every generated token but a final EOS.

        Special tokens are kept, not skipped: a policy that pads its answer with tokens that decode to
        nothing (BOS, PAD, chat markers) must not look like one that stopped cleanly. RL agents find
        that exploit quickly when the reward reads skip_special_tokens=True text.
        """
        P = self.prompt_budget
        ids = self.input_ids[row, P : P + length].tolist()
        if ids and ids[-1] in self.model.eos_token_ids:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _teacher_forced_ref(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(R, T)`` reference log-probs of the generated tokens of finished rows, one forward pass."""
        P = self.prompt_budget
        width = int(mask[:, :P].sum(-1).max())  # columns left of this are padding in every row
        T = ids.shape[1] - P
        logprobs = token_logprobs(self.ref.model, ids[:, P - width :], mask[:, P - width :], last=T)
        return logprobs * mask[:, P:].float()

    def _finish_kl(self, rows: list[int], final: dict[str, Any], reward: torch.Tensor, beta: float) -> None:
        """Per-episode KL figures; in deferred mode also the KL part of the final reward."""
        B, T = self.num_envs, self.generation_budget
        lengths = final["completion_length"][rows]
        valid = torch.arange(T, device=self.device)[None, :] < lengths[:, None]  # (R, T)
        ref = self.ref_logprobs[rows] * valid
        pol = self.policy_logprobs[rows] * valid
        complete = (self.has_policy_logprobs[rows] | ~valid).all(-1)  # (R,) every step announced its log-prob
        non_score = torch.where(complete[:, None], beta * (ref - pol), beta * ref) * valid

        def per_env(values: torch.Tensor) -> torch.Tensor:  # (R, ...) -> (B, ...), zeros elsewhere
            out = values.new_zeros((B, *values.shape[1:]))
            out[rows] = values
            return out

        final["kl_coef"] = torch.full((B,), beta, dtype=torch.float32, device=self.device)
        if self.ref_timing == "episode_end":
            reward[rows] += non_score.sum(-1)
            final["ref_logprobs"], final["non_score_rewards"] = per_env(ref), per_env(non_score)
        if bool(complete.any()):
            seq_kl = kl_k1(pol, ref).sum(-1)
            final["episode_kl"] = per_env(torch.where(complete, seq_kl, 0.0))
            final["episode_kl_k3"] = per_env(torch.where(complete, (kl_k3(pol, ref) * valid).sum(-1), 0.0))
            if self.kl_update == "env":
                self.kl.update(float(seq_kl[complete].mean()), int(complete.sum()))

    # ------------------------------------------------------------------------------------------ views
    def observation(self) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask``, ``(B, L)`` int64 copies."""
        return {"input_ids": self.input_ids.clone(), "attention_mask": self.attention_mask.clone()}

    def completion(self, row: int) -> str:
        n = int(self.gen_len[row])
        return self.tokenizer.decode(
            self.input_ids[row, self.prompt_budget : self.prompt_budget + n].tolist()
        )

    def render_text(self, row: int) -> str:
        prompt_ids = self.input_ids[row, : self.prompt_budget][
            self.attention_mask[row, : self.prompt_budget] == 1
        ]
        prompt = self.tokenizer.decode(prompt_ids.tolist(), skip_special_tokens=True)
        return f"{prompt}\x1b[1m{self.completion(row)}\x1b[0m"

    def validate_actions(self, actions: Any) -> torch.Tensor:
        """``(B,)`` int64 tensor on the batch's device, or a ValueError/TypeError naming what is wrong."""
        if isinstance(actions, torch.Tensor):
            if actions.device != self.device and not (
                actions.device.type == self.device.type and self.device.index is None
            ):
                raise ValueError(f"actions are on {actions.device} but the environment is on {self.device}")
            if actions.dtype.is_floating_point or actions.dtype in (
                torch.bool,
                torch.complex64,
                torch.complex128,
            ):
                raise TypeError(f"actions must be integer token ids, got dtype {actions.dtype}")
        else:
            array = np.asarray(actions)
            if not np.issubdtype(array.dtype, np.integer):
                raise TypeError(f"actions must be integer token ids, got {actions!r} of dtype {array.dtype}")
            actions = torch.from_numpy(array.astype(np.int64, copy=False))
        actions = actions.to(self.device, torch.long).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {tuple(actions.shape)}")
        low, high = torch.aminmax(actions)
        if int(low) < 0 or int(high) >= self.vocab_size:
            i = int(((actions < 0) | (actions >= self.vocab_size)).nonzero()[0, 0])
            raise ValueError(
                f"action {int(actions[i])} (env {i}) is out of range: "
                f"expected a token id in [0, {self.vocab_size})"
            )
        return actions


def make_batch(
    task: Task | type[Task] | str | None, task_class: type[Task] | None, num_envs: int, kwargs: dict[str, Any]
) -> GenerationBatch:
    """Build a batch from env keyword arguments: the engine's own go to it, any others to the task."""
    engine_keys = set(inspect.signature(GenerationBatch.__init__).parameters) - {"self", "task", "num_envs"}
    engine_kwargs = {key: value for key, value in kwargs.items() if key in engine_keys}
    task_kwargs = {key: value for key, value in kwargs.items() if key not in engine_keys}
    if isinstance(task, str):
        task = import_object(task)
    if task is None:
        if task_class is None:
            raise TypeError("TextEnv needs a task: pass task=Task instance or 'pkg.module:TaskClass'")
        task = task_class
    if isinstance(task, type) and issubclass(task, Task):
        try:
            task = task(**task_kwargs)
        except TypeError as exc:
            raise TypeError(f"bad keyword for the env or its task {task.__name__}: {exc}") from exc
    elif task_kwargs:
        raise TypeError(f"unexpected keyword arguments {sorted(task_kwargs)} for a ready-made task {task!r}")
    if not isinstance(task, Task):
        raise TypeError(f"task must be a textgym.task.Task or its import string, got {task!r}")
    return GenerationBatch(task, num_envs, **engine_kwargs)
