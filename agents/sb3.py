"""stable-baselines3 adapter: SB3's PPO and A2C train a causal LM on textgym envs, exactly and at our cost.

```python
from stable_baselines3 import PPO
from textgym.agents.sb3 import (
    LM_DEFAULTS, LMActorCriticPolicy, LMRolloutBuffer, TextgymCallback, TextgymVecEnv
)

env = TextgymVecEnv("textgym/Copy-v1", num_envs=8)
model = PPO(
    LMActorCriticPolicy,
    env,
    policy_kwargs={"model": "path/to/model"},
    rollout_buffer_class=LMRolloutBuffer,
    **LM_DEFAULTS,
)
model.learn(10_000, callback=TextgymCallback())
```

Four pieces, each within SB3's public hooks:

- :class:`LMActorCriticPolicy` wraps :class:`textgym.agents.policy.LMPolicy` (the LM and a value head on
  its last hidden state at each row's last real column). SB3's network building is skipped, so
  pretrained weights are never orthogonally re-initialised; the LM stays in eval mode (SB3's training
  mode would switch dropout on and PPO's first ratio would not be 1); the model is named by a string so
  that ``save``/``load`` rebuild it. In rollouts it keeps a KV cache per row, so an episode of ``T``
  tokens costs ``T`` single-token steps rather than ``T`` passes over the whole prefix.
- :class:`TextgymVecEnv` is SB3's ``VecEnv`` over textgym's native vector env: one batched reference
  forward per step, and DummyVecEnv's same-step reset (``terminal_observation`` in the info). SB3 has
  no bridge for Gymnasium vector envs of its own. ``make_vec_env("textgym:textgym/Copy-v1")`` also
  works, with ``n`` batch-1 envs.
- :class:`LMRolloutBuffer` makes the KL shaping exact and the training cost linear. SB3 gives the env
  only the action, so the env pays ``beta * log pi_ref(a_t|s_t)`` per token; the buffer adds the
  missing ``-beta * log pi(a_t|s_t)`` from the log-prob SB3 stores beside it, so that the reward SB3
  trains on is ``score - beta * (log pi - log pi_ref)`` token by token, with the env's beta. Its
  minibatches are whole episode segments, which the policy evaluates with one forward each (step
  ``t``'s observation is a prefix of the segment's last one) instead of one per step.
- :class:`TextgymCallback` hands the buffer the env's beta at each rollout, logs ``objective/scores``,
  ``objective/kl`` (per sequence) and ``objective/kl_coef`` as our agents do, and moves an adaptive beta
  once per rollout from the rollout's mean KL (the env cannot: it never sees the policy's log-probs).

``LM_DEFAULTS`` replaces SB3's control-task defaults with the LM ones.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
import sys
from collections.abc import Generator, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableDictRolloutBufferSamples
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HumanOutputFormat,
    Logger,
    TensorBoardOutputFormat,
)
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples, Schedule
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from textgym.agent import Option
from textgym.agents.policy import LMPolicy, last_real_column
from textgym.envs import TextVectorEnv
from textgym.models import ModelBundle, load_model
from textgym.models.cached_lm import CachedLM
from textgym.task import TINY

# SB3's defaults are tuned for control tasks; these are the LM ones (TRL, OpenRLHF): no discount, GAE
# lambda 1 so the terminal score reaches the first token, a small step size.
LM_DEFAULTS: dict[str, Any] = {"gamma": 1.0, "gae_lambda": 1.0, "learning_rate": 1e-5}


# ------------------------------------------------------------------------------------------------ policy
class LMPolicyMixin:
    """What SB3's two actor-critic bases need to hold a causal LM; see :class:`LMActorCriticPolicy`."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        model: str | ModelBundle,
        temperature: float = 1.0,
        value_seed: int = 0,
        kv_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"{type(self).__name__} needs a Discrete action space, got {action_space}")
        self.model_spec, self.temperature, self.value_seed = model, float(temperature), int(value_seed)
        self.kv_cache = bool(kv_cache)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        # Replaces SB3's MLP building outright: no mlp_extractor, no orthogonal init of the LM. The base
        # class has already made the action distribution (categorical, or masked categorical).
        bundle = self.model_spec if isinstance(self.model_spec, ModelBundle) else load_model(self.model_spec)
        self.lm_policy = LMPolicy(
            bundle, value_head=True, seed=self.value_seed, num_actions=int(self.action_space.n)
        )
        self.rollout_cache = RolloutCache(self.lm_policy)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(False)  # eval always: dropout would make PPO's first ratio differ from 1
        self.rollout_cache.clear()  # SB3 switches modes at every rollout, update and predict

    def _outputs(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, V)`` and values ``(N,)`` of SB3's observations, or of a grouped minibatch."""
        # SB3 hands Box observations over as floats (exact below 2^24): the ids go back to int64.
        ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
        if "segment" in obs:  # LMRolloutBuffer's whole segments: one forward each
            return self.lm_policy.outputs_at(ids, mask, obs["segment"].long(), obs["column"].long())
        if self.kv_cache and not torch.is_grad_enabled():
            return self.rollout_cache(ids, mask)
        return self.lm_policy.next_token(ids, mask)

    def _distribution_and_values(self, obs: dict[str, torch.Tensor], action_masks: Any = None):
        logits, values = self._outputs(obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits / self.temperature)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        return distribution, values[:, None]  # values (N, 1), as SB3's value_net returns them

    def forward(self, obs: dict[str, torch.Tensor], deterministic: bool = False, action_masks: Any = None):
        distribution, values = self._distribution_and_values(obs, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(self, obs: dict[str, torch.Tensor], actions: torch.Tensor, action_masks: Any = None):
        distribution, values = self._distribution_and_values(obs, action_masks)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: dict[str, torch.Tensor], action_masks: Any = None):
        return self._distribution_and_values(obs, action_masks)[0]

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._distribution_and_values(obs)[1]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            model=self.model_spec,
            temperature=self.temperature,
            value_seed=self.value_seed,
            kv_cache=self.kv_cache,
        )
        for key in ("net_arch", "activation_fn", "ortho_init"):  # SB3's MLP options, unused here
            data.pop(key, None)
        return data


class LMActorCriticPolicy(LMPolicyMixin, ActorCriticPolicy):
    """An SB3 ``ActorCriticPolicy`` over a causal LM (PPO, A2C): the LM head is the action distribution.

    Args:
        observation_space: textgym's ``Dict(input_ids, attention_mask)``.
        action_space: ``Discrete(V)``, V the model's logits dimension.
        lr_schedule: SB3's learning-rate schedule.
        model: a model name or local folder (kept as a string, so ``save``/``load`` round-trip), or a
            ``ModelBundle`` (not saved by name).
        temperature: the sampling temperature; log-probs use the same one.
        value_seed: seeds the value head's initial weights.
        kv_cache: keep a KV cache per row in rollouts (no-grad calls); False recomputes every
            observation in full, as SB3 does for any policy.
        optimizer_class, optimizer_kwargs: as SB3's (A2C passes RMSprop through them).
    """


class MaskableLMActorCriticPolicy(LMPolicyMixin, MaskableActorCriticPolicy):
    """The same policy for sb3-contrib's ``MaskablePPO``: actions outside the mask get probability 0.

    Its log-probs (the ones PPO's ratio and the KL shaping use) are those of the masked distribution the
    tokens were sampled from. Same arguments as :class:`LMActorCriticPolicy`.
    """


class RolloutCache:
    """A KV cache per row for SB3's step-by-step calls: the new observation is matched to the last one.

    Row by row, an observation equal to the row's last one reuses its outputs; one that adds exactly one
    token right of the row's tokens steps the cache by that token; anything else (a reset, another
    batch) refills the row from its tokens. The cache never serves outputs of old weights: it is
    cleared whenever SB3 switches the policy's mode (before every rollout, update and ``predict``) and
    whenever a parameter has been written in place since (an optimizer step, ``load_state_dict``;
    writes through ``.data`` bypass autograd's version counter, so call :meth:`clear` after them).
    """

    def __init__(self, policy: LMPolicy) -> None:
        self.policy = policy
        self.lm: CachedLM | None = None
        self.obs: tuple[torch.Tensor, torch.Tensor] | None = None  # (B, L) ids and mask the cache holds
        self.weights_version: int | None = None

    def clear(self) -> None:
        self.lm, self.obs = None, None

    def _weights_version(self) -> int:
        # Autograd's version counter moves on every in-place write to a tensor.
        return sum(p._version for p in self.policy.parameters())

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        version = self._weights_version()
        if (
            self.lm is None
            or self.obs is None
            or self.obs[0].shape != ids.shape
            or version != self.weights_version
        ):
            self.lm = CachedLM(self.policy.lm, self.policy.bundle.pad_token_id, hidden_states=True)
            self.lm.prefill(*left_aligned(ids, mask))
        else:
            old_ids, old_mask = self.obs
            kept = ((ids == old_ids) | (old_mask == 0)).all(-1) & (mask >= old_mask).all(-1)  # (B,)
            grown = (mask - old_mask).sum(-1)  # (B,) new real columns
            last = last_real_column(mask)
            stepped = kept & (grown == 1) & (last > last_real_column(old_mask))
            refill = ~(kept & (grown == 0)) & ~stepped
            if refill.any():
                rows = refill.nonzero()[:, 0]
                self.lm.prefill(*left_aligned(ids[rows], mask[rows]), rows=rows)
            if stepped.any():
                tokens = ids.gather(1, last[:, None])[:, 0]
                self.lm.step(tokens, None if bool(stepped.all()) else stepped)
        self.obs, self.weights_version = (ids.clone(), mask.clone()), version
        values = self.policy.value(self.lm.next_hidden)
        return self.lm.next_logits.float(), values


def left_aligned(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's real tokens moved to the right end (left padding), leading all-pad columns dropped."""
    order = torch.argsort(mask, dim=1, stable=True)  # pads first, real tokens after in their order
    ids, mask = ids.gather(1, order), mask.gather(1, order)
    width = int(mask.sum(-1).max())
    return ids[:, -width:], mask[:, -width:]


# --------------------------------------------------------------------------------------------- vec env
class TextgymVecEnv(VecEnv):
    """SB3's ``VecEnv`` over textgym's native vector env (``TextVectorEnv``).

    One batched reference forward per step for all envs, observations as NumPy int64, and DummyVecEnv's
    semantics: an env that ends is reset in the same step, its last observation is in the info as
    ``terminal_observation``, and ``TimeLimit.truncated`` is False (textgym episodes end by
    termination). Per-step info values (``ref_logprob``, ``non_score_reward``) and episode-end values
    (``score``, ``completion``, ...) are per-env dicts, as SB3 expects.

    With ``mask_top_k=k`` it offers sb3-contrib's ``action_masks()``: the ``k`` tokens the env's reference
    model ranks highest for each env's next token (RL4LMs' NLPO masks with top-k as well), read from the
    reference logits the env computes anyway for the KL.

    Args:
        env: a textgym env id, or a ``TextVectorEnv`` made with ``autoreset_mode=DISABLED``.
        num_envs: the number of envs, when ``env`` is an id.
        mask_top_k: the size of the top-k action mask for ``MaskablePPO``; None offers no masks.
        **env_kwargs: passed to ``gym.make_vec`` (``model``, ``kl_coef``, ``device``, ...). The
            reference log-prob is paid at every step (``ref_logprobs="step"``): delivering the KL at the
            episode's end would move its credit once GAE lambda is below 1.
    """

    def __init__(
        self, env: str | TextVectorEnv, num_envs: int = 1, mask_top_k: int | None = None, **env_kwargs: Any
    ) -> None:
        if isinstance(env, str):
            env_kwargs = {"ref_logprobs": "step", "kl_update": "caller", **env_kwargs}
            env = gym.make_vec(
                env,
                num_envs=num_envs,
                vectorization_mode="vector_entry_point",
                autoreset_mode=AutoresetMode.DISABLED,
                **env_kwargs,
            )
        if not isinstance(env, TextVectorEnv):
            raise TypeError(f"expected a textgym env id or a TextVectorEnv, got {env!r}")
        if env.metadata["autoreset_mode"] != AutoresetMode.DISABLED:
            raise ValueError(
                f"TextgymVecEnv resets ended envs itself: make the TextVectorEnv with "
                f"autoreset_mode=DISABLED, got {env.metadata['autoreset_mode']}"
            )
        if mask_top_k is not None and not 1 <= mask_top_k <= env.vocab_size:
            raise ValueError(
                f"mask_top_k must be in [1, {env.vocab_size}] (the vocabulary), got {mask_top_k}"
            )
        self.envs, self.mask_top_k = env, mask_top_k
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> dict[str, np.ndarray]:
        seed = None if self._seeds[0] is None else list(self._seeds)  # set by SB3's seed()
        obs, infos = self.envs.reset(seed=seed)
        self.reset_infos = self._per_env(infos)
        self._reset_seeds()
        return _numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, terminated, truncated, infos = _numpy(self.envs.step(self._actions))
        dones = terminated | truncated
        per_env = self._per_env(infos)
        for i in np.flatnonzero(dones):
            per_env[i]["terminal_observation"] = {key: value[i].copy() for key, value in obs.items()}
            per_env[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if dones.any():
            obs, reset_infos = self.envs.reset(options={"reset_mask": dones})
            obs = _numpy(obs)
            for i, info in enumerate(self._per_env(reset_infos)):
                if dones[i]:
                    self.reset_infos[i] = info
        return obs, rewards.astype(np.float32), dones, per_env

    def _per_env(self, infos: dict[str, Any]) -> list[dict[str, Any]]:
        """Gymnasium's vector infos (values with a ``_key`` mask) as SB3's list of per-env dicts."""
        infos = _numpy(infos)
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key, values in infos.items():
            if key.startswith("_"):
                continue
            for i in np.flatnonzero(infos[f"_{key}"]):
                value = values[i]
                out[i][key] = value.item() if isinstance(value, np.generic) else value
        return out

    def action_masks(self) -> np.ndarray:
        """``(num_envs, V)`` bool: True on the reference's ``mask_top_k`` most likely next tokens."""
        if self.mask_top_k is None:
            raise AttributeError("this TextgymVecEnv offers no action masks: make it with mask_top_k=k")
        logits = self.envs.reference_next_logits()  # (B, V)
        top = logits.topk(self.mask_top_k, dim=-1).indices
        masks = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
        return masks.cpu().numpy()

    def close(self) -> None:
        self.envs.close()

    def has_attr(self, attr_name: str) -> bool:
        if attr_name == "action_masks":  # what sb3-contrib asks before MaskablePPO's rollouts
            return self.mask_top_k is not None
        return hasattr(self.envs, attr_name)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        # One env object holds every row: each index reads the same attribute (beta, the tokenizer, ...).
        return [getattr(self.envs, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(
                f"the envs share one {type(self.envs).__name__}: set {attr_name!r} on all of them"
            )
        setattr(self.envs, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list:
        if method_name == "action_masks":  # one mask per env
            return list(self.action_masks()[list(self._get_indices(indices))])
        result = getattr(self.envs, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if isinstance(value, dict):
        return {key: _numpy(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_numpy(item) for item in value)
    return value


# -------------------------------------------------------------------------------------- rollout buffer
class LMRolloutBuffer(DictRolloutBuffer):
    """SB3's rollout buffer with the exact KL shaping and whole-episode minibatches.

    ``add`` subtracts ``kl_coef * log pi(a_t|s_t)`` from the env's reward, which holds
    ``kl_coef * log pi_ref(a_t|s_t)`` (plus the score on the last token): what is stored is
    ``score - kl_coef * (log pi - log pi_ref)``. :class:`TextgymCallback` sets ``kl_coef`` from the env
    at the start of every rollout.

    ``get`` yields minibatches of whole segments (one env's steps of one episode within the rollout),
    about ``batch_size`` steps each, in a random order. A minibatch's ``observations`` hold each
    segment's last observation ``(S, L)``, and per step ``segment`` (its row there) and ``column`` (the
    last real column of the step's own observation), which :class:`LMActorCriticPolicy` evaluates
    with one forward per segment. Every other field is per step, in the order of those indices.
    """

    kl_coef: float | None = None
    per_step = ("actions", "values", "log_probs", "advantages", "returns")  # flattened for get()

    def add(
        self,
        obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: torch.Tensor,
        log_prob: torch.Tensor,
        **kwargs: Any,
    ) -> None:
        if self.kl_coef is None:
            raise RuntimeError(
                "LMRolloutBuffer.kl_coef is not set: pass callback=TextgymCallback() to learn(), which "
                "reads the KL coefficient from the env at each rollout"
            )
        log_pi = log_prob.detach().cpu().numpy().reshape(-1)  # (n_envs,) at the sampling temperature
        reward = np.asarray(reward, dtype=np.float32) - self.kl_coef * log_pi
        super().add(obs, action, reward, episode_start, value, log_prob, **kwargs)

    def get(self, batch_size: int | None = None) -> Generator[DictRolloutBufferSamples, None, None]:
        assert self.full, "the rollout is not complete"
        segments = self._segments()  # before flattening: episode_starts stays (n_steps, n_envs)
        if not self.generator_ready:
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for name in self.per_step:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        batch_size = batch_size or self.buffer_size * self.n_envs
        batch: list[np.ndarray] = []
        for k in np.random.permutation(len(segments)):
            batch.append(segments[k])
            if sum(len(s) for s in batch) >= batch_size:
                yield self._segment_samples(batch)
                batch = []
        if batch:
            yield self._segment_samples(batch)

    def _segments(self) -> list[np.ndarray]:
        """Flat indices (SB3's flattened order: env-major) of each env's consecutive steps of one episode."""
        segments = []
        for env in range(self.n_envs):
            starts = [0, *[s for s in np.flatnonzero(self.episode_starts[:, env]) if s > 0], self.buffer_size]
            base = env * self.buffer_size
            segments += [np.arange(base + a, base + b) for a, b in itertools.pairwise(starts)]
        return segments

    def _segment_samples(self, segments: list[np.ndarray]) -> DictRolloutBufferSamples:
        return DictRolloutBufferSamples(**self._segment_fields(segments))

    def _segment_fields(self, segments: list[np.ndarray]) -> dict[str, Any]:
        steps = np.concatenate(segments)  # (N,)
        last = np.array([s[-1] for s in segments])  # (S,) each segment's last step
        ids, mask = self.observations["input_ids"], self.observations["attention_mask"]
        observations = {
            "input_ids": self.to_torch(ids[last]),
            "attention_mask": self.to_torch(mask[last]),
            "segment": self.to_torch(np.repeat(np.arange(len(segments)), [len(s) for s in segments])),
            "column": last_real_column(self.to_torch(mask[steps])),  # (N,) each step's next-token column
        }
        return {
            "observations": observations,
            "actions": self.to_torch(self.actions[steps].astype(np.float32, copy=False)),
            "old_values": self.to_torch(self.values[steps].flatten()),
            "old_log_prob": self.to_torch(self.log_probs[steps].flatten()),
            "advantages": self.to_torch(self.advantages[steps].flatten()),
            "returns": self.to_torch(self.returns[steps].flatten()),
        }


class MaskableLMRolloutBuffer(LMRolloutBuffer, MaskableDictRolloutBuffer):
    """:class:`LMRolloutBuffer` for sb3-contrib's ``MaskablePPO``, keeping each mask as its allowed actions.

    sb3-contrib's own buffer stores every mask as ``V`` float32 per step: 3.2 GB at 2048 steps x 8 envs
    x 49k tokens. A top-k mask needs ``k`` indices; this buffer stores ``(n_steps, n_envs, k)`` int64
    indices (``-1`` pads rows with fewer; the width grows to the widest mask seen, so top-p masks fit
    too) and rebuilds the boolean masks of one minibatch at a time.
    """

    per_step = (*LMRolloutBuffer.per_step, "allowed")

    def reset(self) -> None:
        DictRolloutBuffer.reset(self)  # not MaskableDictRolloutBuffer's, which allocates the V-wide masks
        self.mask_dims = int(self.action_space.n)
        self.allowed = np.full((self.buffer_size, self.n_envs, 0), -1, dtype=np.int64)

    def add(self, *args: Any, action_masks: np.ndarray | None = None, **kwargs: Any) -> None:
        if action_masks is not None:
            masks = np.asarray(action_masks, dtype=bool).reshape(self.n_envs, self.mask_dims)
            width = int(masks.sum(-1).max())
            if width > self.allowed.shape[2]:
                pad = np.full((*self.allowed.shape[:2], width - self.allowed.shape[2]), -1, dtype=np.int64)
                self.allowed = np.concatenate([self.allowed, pad], axis=2)
            order = np.argsort(~masks, axis=1, kind="stable")[:, : self.allowed.shape[2]]  # allowed first
            self.allowed[self.pos] = np.where(np.take_along_axis(masks, order, 1), order, -1)
        super().add(*args, **kwargs)

    def _segment_samples(self, segments: list[np.ndarray]) -> MaskableDictRolloutBufferSamples:
        allowed = self.allowed[np.concatenate(segments)]  # (N, k)
        masks = np.zeros((len(allowed), self.mask_dims), dtype=bool)
        rows, slots = np.nonzero(allowed >= 0)
        masks[rows, allowed[rows, slots]] = True
        masks[~masks.any(-1)] = True  # a step stored without a mask allows every action
        return MaskableDictRolloutBufferSamples(
            **self._segment_fields(segments), action_masks=self.to_torch(masks)
        )


# -------------------------------------------------------------------------------------------- callback
class TextgymCallback(BaseCallback):
    """Wires the env's KL coefficient into SB3 and logs what the env paid, as textgym's agents log it.

    - At each rollout's start, gives :class:`LMRolloutBuffer` the env's ``kl_coef``.
    - Logs ``objective/scores`` (the task score of the episodes that ended in the rollout),
      ``objective/kl`` (their KL to the reference, k1 summed over tokens, from SB3's stored log-probs and
      the env's reference log-probs) and ``objective/kl_coef``. SB3's ``ep_rew_mean`` includes the KL
      terms; ``objective/scores`` does not.
    - Moves an adaptive beta once per rollout from that mean KL (Ziegler's update), as our agents do.

    Works with :class:`TextgymVecEnv` and with ``make_vec_env`` (SB3's DummyVecEnv) over textgym envs.
    """

    def _on_training_start(self) -> None:
        self._kl = np.zeros(self.training_env.num_envs)  # the running episodes' KL so far
        controllers = {id(c): c for c in self.training_env.get_attr("kl_controller")}
        self._controllers = list(controllers.values())
        buffer = getattr(self.model, "rollout_buffer", None)
        if self._kl_coef() and not isinstance(buffer, LMRolloutBuffer):
            raise TypeError(
                f"KL shaping under SB3 needs rollout_buffer_class=LMRolloutBuffer (got "
                f"{type(buffer).__name__}): without it the env pays only beta * log pi_ref per token"
            )

    def _kl_coef(self) -> float:
        values = {c.value for c in self._controllers}
        if len(values) != 1:
            raise ValueError(f"the envs' KL coefficients differ: {sorted(values)}")
        return values.pop()

    def _on_rollout_start(self) -> None:
        buffer = getattr(self.model, "rollout_buffer", None)
        if isinstance(buffer, LMRolloutBuffer):
            buffer.kl_coef = self._kl_coef()
        self._scores: list[float] = []
        self._kls: list[float] = []

    def _on_step(self) -> bool:
        log_probs = self.locals["log_probs"].detach().cpu().numpy().reshape(-1)
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            if "ref_logprob" in info:
                self._kl[i] += log_probs[i] - info["ref_logprob"]
            if done:
                self._scores.append(float(info["score"]))
                self._kls.append(float(self._kl[i]))
                self._kl[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("objective/kl_coef", self._kl_coef())  # the beta that shaped this rollout
        if not self._scores:
            return
        kl = float(np.mean(self._kls))
        self.logger.record("objective/scores", float(np.mean(self._scores)))
        self.logger.record("objective/kl", kl)
        for controller in self._controllers:
            controller.update(kl, len(self._kls))


# ----------------------------------------------------------------------------------------------- agents
class SB3Agent:
    """An SB3 algorithm with every piece above wired in, behind textgym's ``Agent`` protocol.

    ``SB3PPO``, ``SB3A2C`` and ``SB3MaskablePPO`` (``make_agent("sb3-ppo", ...)``) choose the algorithm.
    ``agent.model`` is the SB3 algorithm itself, for anything SB3 offers beyond the protocol.

    Args:
        env: a textgym env id.
        model: the policy's starting LM, a name or local folder (``load_model``), and the env's model
            (its KL reference) unless ``env_kwargs`` names one; None: the env's own model (a tiny task's
            model is saved inside the agent's zip, a named one by its name).
        seed: seeds SB3 (weights, sampling) and the envs' prompts.
        n_envs: episodes stepped side by side.
        temperature: the policy's sampling temperature.
        mask_top_k: ``MaskablePPO`` only: the size of the reference's top-k action mask.
        env_kwargs: passed to ``gym.make_vec`` (``kl_coef``, ``kl_target``, ...).
        verbose, tensorboard_log: as SB3's.
        log_dir: SB3's logger writes ``progress.csv`` and TensorBoard events here (None: SB3's default);
            a loaded agent goes on in ``progress-from-<num_timesteps>.csv`` (SB3's CSV writer truncates).
        **algo_kwargs: the algorithm's own arguments (``n_steps``, ``batch_size``, ...), over
            ``LM_DEFAULTS``; ``policy_kwargs`` go to the policy (``kv_cache``, ``optimizer_class``).
    """

    algorithm: ClassVar[type[OnPolicyAlgorithm]] = PPO

    def __init__(
        self,
        env: str,
        *,
        model: str | None = None,
        seed: int = 0,
        n_envs: int = 8,
        temperature: float = 1.0,
        mask_top_k: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        tensorboard_log: str | None = None,
        log_dir: str | None = None,
        **algo_kwargs: Any,
    ) -> None:
        maskable = issubclass(self.algorithm, MaskablePPO)
        if maskable == (mask_top_k is None):
            raise ValueError(
                f"mask_top_k is for MaskablePPO, which needs one: got {mask_top_k} for "
                f"{self.algorithm.__name__}"
            )
        env_kwargs = dict(env_kwargs or {})
        if model is not None:
            env_kwargs.setdefault("model", model)  # the starting model is the KL reference, as in our agents
        self._make_envs(env, n_envs, mask_top_k, env_kwargs)
        if model is None:
            default = self.envs.envs.task.default_model
            model = self.envs.envs.model if default == TINY else default
        policy = MaskableLMActorCriticPolicy if maskable else LMActorCriticPolicy
        self.model = self.algorithm(
            policy,
            VecMonitor(self.envs),
            policy_kwargs={
                "model": model,
                "temperature": temperature,
                "value_seed": seed,
                **algo_kwargs.pop("policy_kwargs", {}),
            },
            rollout_buffer_class=MaskableLMRolloutBuffer if maskable else LMRolloutBuffer,
            seed=seed,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            **{**LM_DEFAULTS, **algo_kwargs},
        )
        # Saved with the algorithm (SB3 pickles its attributes), so that load() rebuilds the envs.
        self.model.textgym_env = (env, n_envs, mask_top_k, self.env_kwargs)
        self.model.textgym_log_dir = log_dir
        self._attach_logger()

    def _make_envs(
        self, env_id: str, n_envs: int, mask_top_k: int | None, env_kwargs: dict[str, Any]
    ) -> None:
        self.env_id, self.n_envs, self.mask_top_k, self.env_kwargs = env_id, n_envs, mask_top_k, env_kwargs
        self.envs = TextgymVecEnv(env_id, n_envs, mask_top_k=mask_top_k, **env_kwargs)

    @property
    def lm(self) -> torch.nn.Module:
        """The causal LM the policy samples from."""
        return self.model.policy.lm_policy.lm

    # What the Args above say of the agent's own settings, for ``textgym train --help``.
    _own_help: ClassVar[dict[str, str]] = {
        "n_envs": "episodes stepped side by side",
        "temperature": "the policy's sampling temperature",
        "mask_top_k": "MaskablePPO only: the size of the reference's top-k action mask",
        "env_kwargs": "passed to gym.make_vec (kl_coef, kl_target, ...)",
        "verbose": "SB3's verbosity",
        "tensorboard_log": "SB3's TensorBoard folder",
        "log_dir": "SB3's logger writes progress.csv and TensorBoard events here",
    }

    @classmethod
    def options(cls) -> list[Option]:
        """The agent's own settings, then the algorithm's (defaults over ``LM_DEFAULTS``, SB3's help)."""
        helps = dict(
            re.findall(r":param (\w+): (.*?)(?=\n\s*:param|\n\s*:return|\Z)", cls.algorithm.__doc__, re.S)
        )
        own = inspect.signature(cls.__init__).parameters
        options = [Option(n, own[n].default, help_text) for n, help_text in cls._own_help.items()]
        # Set by the agent itself (the policy, its buffer) or run-level (textgym train's --model, --seed).
        skip = {"self", "policy", "env", "rollout_buffer_class", "_init_setup_model", *own}
        for name, p in inspect.signature(cls.algorithm.__init__).parameters.items():
            if name not in skip:
                help_text = " ".join(helps.get(name, "").split())
                options.append(Option(name, LM_DEFAULTS.get(name, p.default), help_text))
        return options

    @property
    def num_timesteps(self) -> int:
        return self.model.num_timesteps

    def _attach_logger(self) -> None:
        log_dir = getattr(self.model, "textgym_log_dir", None)
        if log_dir is None:
            # SB3's own default logger makes an empty /tmp/SB3-<date> folder at every learn(): the same
            # output (the stdout table when verbose), no folder.
            self.model.set_logger(Logger(None, [HumanOutputFormat(sys.stdout)] if self.model.verbose else []))
            return
        n = self.model.num_timesteps
        csv_path = os.path.join(log_dir, "progress.csv" if n == 0 else f"progress-from-{n}.csv")
        os.makedirs(log_dir, exist_ok=True)
        self.model.set_logger(
            Logger(str(log_dir), [CSVOutputFormat(csv_path), TensorBoardOutputFormat(log_dir)])
        )

    def learn(
        self, total_timesteps: int, callback: Any = None, progress_bar: bool = False, **kwargs: Any
    ) -> SB3Agent:
        """Train until ``total_timesteps`` env steps since the run's start, with :class:`TextgymCallback`.

        The Agent protocol's count, which a loaded agent continues: SB3's
        ``learn(total_timesteps - num_timesteps, reset_num_timesteps=False)``, so a fresh agent trains
        ``total_timesteps`` steps as SB3 would.
        """
        remaining = total_timesteps - self.model.num_timesteps
        if remaining <= 0:
            return self
        callbacks = [TextgymCallback(), *([] if callback is None else [callback])]
        self.model.learn(
            remaining, callback=callbacks, progress_bar=progress_bar, reset_num_timesteps=False, **kwargs
        )
        return self

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]:
        """Next tokens, as SB3's ``predict`` (unmasked: masks shape training only, as NLPO evaluates)."""
        return self.model.predict(_numpy(observation), state, episode_start, deterministic)

    def save(self, path: str | os.PathLike[str]) -> None:
        self.model.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> SB3Agent:
        """Rebuild the agent, its envs and its SB3 algorithm (weights, optimizer, counters) from ``save``."""
        model = cls.algorithm.load(path, **kwargs)
        agent = cls.__new__(cls)
        agent._make_envs(*model.textgym_env)
        model.set_env(VecMonitor(agent.envs))
        agent.model = model
        agent._attach_logger()
        return agent


class SB3PPO(SB3Agent):
    """SB3's ``PPO`` on a causal LM; the arguments are :class:`SB3Agent`'s."""

    algorithm = PPO


class SB3A2C(SB3Agent):
    """SB3's ``A2C`` on a causal LM; the arguments are :class:`SB3Agent`'s."""

    algorithm = A2C


class SB3MaskablePPO(SB3Agent):
    """sb3-contrib's ``MaskablePPO`` on a causal LM; the arguments are :class:`SB3Agent`'s."""

    algorithm = MaskablePPO
