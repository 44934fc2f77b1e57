"""The trainer the LM agents share: env, policy and optimizer, the learn loop, logging, predict/save/load.

An algorithm subclasses :class:`LMAgent`, declares its config dataclass, and implements
:meth:`LMAgent.update`, one policy update from a batch of finished episodes. The policy is one module
(:class:`textgym.agents.policy.LMPolicy`); the rewards it trains on are the ones the env paid
(``Episodes.rewards``); persistence is :mod:`textgym.agents.checkpoint`.

Under a launcher (``torchrun --nproc-per-node N ...``) the agent trains data-parallel
(:mod:`textgym.distributed`): ``batch_size`` stays the global batch, each rank samples its slice of the
iteration's prompts into a vector env of ``batch_size / N`` rows, the policy is wrapped in
``DistributedDataParallel`` (gradients averaged), and the algorithms reduce their global statistics.
Groups of episodes per prompt (RLOO, GRPO) are kept within a rank. Only rank 0 logs and saves.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from textgym import distributed
from textgym.agents.checkpoint import CheckpointError, is_plain, load_checkpoint, save_checkpoint
from textgym.agents.config import AgentConfig, build_config
from textgym.agents.logger import MetricLogger
from textgym.agents.policy import LMPolicy, observation_batch, predicted_actions
from textgym.envs import TextEnv, TextVectorEnv
from textgym.evaluation import Evaluation, evaluate
from textgym.models import ModelBundle, load_model, resolve_device
from textgym.rollout import Episodes, sample_episodes


class LMAgent:
    """Base class of on-policy agents that train a causal LM on a textgym task.

    Args:
        env: a textgym env id, a single :class:`TextEnv` (its id and arguments are reused), or a
            :class:`TextVectorEnv` made with ``autoreset_mode=DISABLED`` and ``num_envs=batch_size``
            (with ``kl_update="caller"``, as the agent makes its own, an adaptive beta moves once per
            iteration).
        model: the model to train: a name or path, or a ``ModelBundle`` sharing the env's tokenizer.
            Defaults to the env's model. Either way it is loaded once: the env keeps the frozen copy as
            its KL reference and the policy trains a copy (a vector env passed in, or ``env_kwargs``
            naming ``model``, keeps its own reference).
        env_kwargs: extra ``gym.make_vec`` arguments when ``env`` is an id.
        config: fields of the algorithm's config dataclass; unknown names are an error.
    """

    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    value_head: ClassVar[bool] = False  # whether the policy carries a value head (actor-critic agents)
    data_parallel: ClassVar[bool] = True  # trains under torchrun (textgym.run checks before launching it)

    def __init__(
        self,
        env: str | TextEnv | TextVectorEnv,
        model: str | ModelBundle | None = None,
        env_kwargs: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        self.config = build_config(self.config_class, config)
        self.device = distributed.init(resolve_device(self.config.device))
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.local_batch_size = self._local_batch_size()
        env_kwargs = dict(env_kwargs or {})
        if model is not None and not isinstance(env, TextVectorEnv) and "model" not in env_kwargs:
            # The starting model is the env's model, so the KL reference (InstructGPT's SFT policy; TRL's
            # ref_model default) and, as a name, saved with the env's arguments: a loaded agent (LoRA
            # adapters included) rebuilds on it. ``env_kwargs={"ref_model": ...}`` picks another reference.
            env_kwargs["model"] = model
            model = None
        self.envs = self._make_envs(env, env_kwargs)
        if self.config.prompt_order not in ("random", "epochs"):
            raise ValueError(f"prompt_order must be 'random' or 'epochs', got {self.config.prompt_order!r}")
        if self.config.prompt_order == "epochs":
            self.envs.pool  # noqa: B018 -- a task without a finite pool says so now, not mid-run
        if model is None:
            bundle = self.envs.model
        elif isinstance(model, ModelBundle):
            bundle = model
        else:
            bundle = load_model(model, device=self.device)
        self.policy = LMPolicy(
            bundle,
            value_head=self.value_head,
            lora_config=self._lora_config() if self.config.lora_r > 0 else None,
            seed=self.config.seed,
            num_actions=self.envs.vocab_size,
        )
        if self.config.gradient_checkpointing:
            # Non-reentrant checkpointing is the kind DistributedDataParallel's gradient hooks work with.
            self.policy.base_model.gradient_checkpointing_enable({"use_reentrant": False})
            if self.policy.is_lora:  # frozen embeddings would cut the gradient
                self.policy.base_model.enable_input_require_grads()
        # The module the gradient passes run through: DDP all-reduces (averages) gradients in backward.
        self.trained: torch.nn.Module = self.policy
        if self.world_size > 1:
            self.trained = torch.nn.parallel.DistributedDataParallel(
                self.policy, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if self.config.bf16 and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            warnings.warn(
                f"{torch.cuda.get_device_name(self.device)} has no bf16: training in fp32 (bf16=False "
                f"silences this)",
                stacklevel=2,
            )
        self.iteration = 0
        self.num_timesteps = 0  # generated tokens so far (SB3's count: one env step is one token)
        self.logger = MetricLogger(None)
        self.build()
        # The fused kernel (as Hugging Face's Trainer picks): on CPU the per-tensor loop costs a 135M
        # model about 1 s a step, a tenth of an iteration; fused takes a third of that (the same update up
        # to rounding).
        self.optimizer = torch.optim.AdamW(
            self.param_groups(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )

    # ------------------------------------------------------------------------------------ set-up
    def _local_batch_size(self) -> int:
        batch, world, group = self.config.batch_size, self.world_size, self.group_size()
        if world > 1 and (batch % world or (batch // world) % group):  # one process: build() checks
            raise ValueError(
                f"batch_size={batch} must split into {world} ranks of whole groups of {group} episodes "
                f"per prompt; use a multiple of {world * group}"
            )
        return batch // world

    def _make_envs(self, env: str | TextEnv | TextVectorEnv, env_kwargs: dict[str, Any]) -> TextVectorEnv:
        cfg = self.config
        self.env_id: str | None = None
        self.env_kwargs: dict[str, Any] = {}
        if isinstance(env, TextVectorEnv):
            width = self.local_batch_size
            if env.metadata["autoreset_mode"] != AutoresetMode.DISABLED or env.num_envs != width:
                raise ValueError(
                    f"a vector env for an agent needs autoreset_mode=DISABLED and num_envs={width} "
                    f"(batch_size / ranks), got {env.metadata['autoreset_mode']} and {env.num_envs}"
                )
            if env.spec is not None:
                self.env_id = env.spec.id
            return env
        if isinstance(getattr(env, "unwrapped", None), TextEnv):
            spec = env.unwrapped.spec
            if spec is None:
                raise ValueError("pass the env id (or a vector env) for an env not made with gym.make")
            env_kwargs = {**spec.kwargs, **env_kwargs}
            env = spec.id
        if not isinstance(env, str):
            raise TypeError(
                f"env must be a textgym env id, TextEnv or TextVectorEnv, got {type(env).__name__}"
            )
        # The agents train on whole episodes, so the reference runs once per finished episode, teacher-forced
        # (ref_logprobs="episode_end"), instead of a cached step with every token; the rollout puts each
        # token's KL term back at its token, so the rewards are the same (a test holds both timings equal).
        for key in ("kl_coef", "kl_target", "kl_horizon", "ref_logprobs"):
            if getattr(cfg, key) is not None and key not in env_kwargs:
                env_kwargs[key] = getattr(cfg, key)
        self.env_id, self.env_kwargs = env, env_kwargs
        envs = gym.make_vec(
            env,
            num_envs=self.local_batch_size,
            vectorization_mode="vector_entry_point",
            autoreset_mode=AutoresetMode.DISABLED,
            device=str(self.device),
            # An adaptive beta moves once per iteration, in learn(), from the whole batch's KL.
            **{"kl_update": "caller", **env_kwargs},
        )
        return envs.unwrapped

    def _lora_config(self):
        try:
            from peft import LoraConfig
        except ImportError as exc:
            raise ImportError(
                "lora_r > 0 needs peft: pip install 'textgym[lora]' (or pip install peft)"
            ) from exc
        cfg = self.config
        return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=cfg.lora_target_modules)

    def build(self) -> None:
        """Check the algorithm's settings and create its own state before the optimizer is made."""

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups; an algorithm may give some (a value head) their own step size."""
        params = [p for p in self.policy.lm_parameters() if p.requires_grad]
        return [{"params": params + self.policy.value_parameters()}]

    def train_mode(self) -> None:
        self.policy.train()

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the rollout and the teacher-forced passes (the optimizer keeps fp32 weights)."""
        if self.config.bf16 and self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self.config.bf16_cpu and self.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --------------------------------------------------------------------------------- rollouts
    def episode_seeds(self, iteration: int) -> list[int]:
        """Env seeds of this rank's episodes in an iteration (its slice of the global batch's).

        A function of the run's seed and the iteration, so resumes replay; the global batch draws the same
        prompts whatever the number of ranks.
        """
        base = (self.config.seed * 1_000_003 + iteration * self.config.batch_size) % 2**31
        group = self.group_size()
        seeds = [base + i // group for i in range(self.config.batch_size)]
        return seeds[self.rank * self.local_batch_size : (self.rank + 1) * self.local_batch_size]

    def group_size(self) -> int:
        """Episodes per prompt (RLOO/GRPO sample several); 1 otherwise."""
        return 1

    def episode_examples(self, iteration: int) -> list[int] | None:
        """Pool indices of this rank's episodes in an iteration with ``prompt_order="epochs"`` (else None).

        The run's prompts, one per group, go through the pool as TRL's sampler does: epoch ``e`` is a
        permutation seeded by the run's seed and ``e``, so every example comes once per epoch, and a resume
        (or any number of ranks) draws what the uninterrupted run draws.
        """
        if self.config.prompt_order == "random":
            return None
        size, group = len(self.envs.pool), self.group_size()
        prompts = self.config.batch_size // group
        indices, orders = [], {}
        for k in range(iteration * prompts, (iteration + 1) * prompts):  # the run's k-th prompt
            epoch, position = divmod(k, size)
            if epoch not in orders:
                orders[epoch] = np.random.default_rng([self.config.seed, epoch]).permutation(size)
            indices += [int(orders[epoch][position])] * group
        return indices[self.rank * self.local_batch_size : (self.rank + 1) * self.local_batch_size]

    def collect(self, iteration: int) -> Episodes:
        # Each rank its own stream, from the run's seed, the iteration and the rank: nothing random is
        # carried from one iteration to the next, so a resume (on any rank) draws what it would have drawn.
        seed = self.config.seed * 7919 + iteration + (self.rank << 32)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self.policy.eval()
        with self.autocast():
            return sample_episodes(
                self.envs,
                self.policy.lm,
                seed=self.episode_seeds(iteration),
                temperature=self.config.temperature,
                generator=generator,
                example_index=self.episode_examples(iteration),
            )

    def evaluate_tokens(
        self, episodes: Episodes, rows: torch.Tensor | slice = slice(None), entropy_grad: bool = True
    ):
        """The policy's teacher-forced pass over ``rows`` of ``episodes``, with gradients (the entropy's
        only with ``entropy_grad``)."""
        with self.autocast():
            return self.trained(
                episodes.prompt_ids[rows],
                episodes.prompt_mask[rows],
                episodes.tokens[rows],
                episodes.completion_mask[rows],
                self.config.temperature,
                entropy_grad,
            )

    # ------------------------------------------------------------------------------------ learn
    def update(self, episodes: Episodes, iteration: int) -> dict[str, float]:
        """One policy update from a batch of finished episodes (this rank's); returns its global metrics."""
        raise NotImplementedError

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate this rank's share of the global loss (the shares sum to it over ranks).

        DDP averages gradients over ranks, so each rank scales its share by the number of ranks: the
        average is then the gradient of the global loss, as one process with the whole batch computes it.
        """
        (loss * self.world_size).backward()

    def learn(
        self,
        total_episodes: int | None = None,
        callback: Callable[[LMAgent, dict[str, float]], bool | None] | None = None,
        progress_bar: bool = True,
        resume: str | os.PathLike[str] | None = None,
        *,
        total_timesteps: int | None = None,
    ) -> LMAgent:
        """Train for ``total_episodes`` episodes or ``total_timesteps`` generated tokens, in whole iterations.

        Args:
            total_episodes: the run's length in episodes (rounded up to whole iterations), counted from its
                start: a resumed run continues towards the same total.
            callback: called after each iteration with the agent and its metrics; returning False (or a
                falsy value other than None, such as ``np.False_``) stops.
            progress_bar: a tqdm bar with reward, KL and tokens per second.
            resume: a checkpoint to continue from; the same seed then continues the same curve.
            total_timesteps: instead of ``total_episodes``, SB3's unit: env steps, here generated tokens.
                Iterations run until the tokens generated since the run's start reach it.
        """
        if (total_episodes is None) == (total_timesteps is None):
            raise TypeError(
                f"learn() takes exactly one of total_episodes and total_timesteps, got "
                f"total_episodes={total_episodes}, total_timesteps={total_timesteps}"
            )
        if resume is not None:
            self._restore(load_checkpoint(resume, type(self).__name__))
        if total_episodes is not None:
            total, unit = math.ceil(total_episodes / self.config.batch_size), "it"

            def progress() -> int:
                return self.iteration
        else:
            total, unit = total_timesteps, "tok"

            def progress() -> int:
                return self.num_timesteps

        main = distributed.is_main()
        self.logger = MetricLogger(self.config.log_dir if main else None, start_iteration=self.iteration + 1)
        bar = tqdm(
            total=total,
            initial=progress(),
            unit=unit,
            disable=not (progress_bar and main),
            desc=type(self).__name__,
        )
        try:
            while progress() < total:
                start = time.perf_counter()
                episodes = self.collect(self.iteration)
                self.train_mode()
                metrics = self.update(episodes, self.iteration)
                metrics.update(self.episode_metrics(episodes))
                tokens = int(distributed.total(int(episodes.lengths.sum())))
                metrics["perf/tokens_per_second"] = tokens / (time.perf_counter() - start)
                metrics["objective/kl_coef"] = self.envs.kl_coef  # the beta that shaped this batch
                self.update_kl_coef(episodes)
                self.iteration += 1
                self.num_timesteps += tokens
                metrics["time/total_timesteps"] = self.num_timesteps
                self.logger.log(self.iteration, metrics)
                bar.update(progress() - bar.n)
                bar.set_postfix(
                    reward=f"{metrics['objective/scores']:.3f}",
                    kl=f"{metrics['objective/kl']:.3f}",
                    tok_s=f"{metrics['perf/tokens_per_second']:.0f}",
                )
                every = self.config.checkpoint_every
                if self.config.checkpoint_dir and every and self.iteration % every == 0 and main:
                    self.save(Path(self.config.checkpoint_dir) / f"iteration-{self.iteration}.pt")
                verdict = None if callback is None else callback(self, metrics)
                if verdict is not None and not verdict:  # `is False` would miss numpy's np.False_
                    break
        finally:
            bar.close()
            self.logger.close()
        if self.config.checkpoint_dir and main:
            self.save(Path(self.config.checkpoint_dir) / "last.pt")
        return self

    def update_kl_coef(self, episodes: Episodes) -> None:
        """Move the env's KL controller once per iteration, from the batch's mean KL per sequence.

        Only when the env leaves it to its caller (``kl_update="caller"``, as the agent makes its env);
        an env that moves beta itself has done so as the episodes ended.
        """
        kl = distributed.gather(episodes.kl)  # every rank moves its controller by the global batch's KL
        known = kl[~np.isnan(kl)]
        if self.envs.kl_update == "caller" and len(known):
            self.envs.kl_controller.update(float(known.mean()), len(known))

    def episode_metrics(self, episodes: Episodes) -> dict[str, float]:
        """TRL-style rollout figures of the global batch, from what the env paid."""
        scores, kl, lengths, returns = (
            distributed.gather(x) for x in (episodes.scores, episodes.kl, episodes.lengths, episodes.returns)
        )
        return {
            "objective/scores": float(scores.mean()),
            "objective/kl": float(np.nan_to_num(kl).mean()),
            "objective/non_score_reward": float((returns - scores).mean()),
            "objective/rlhf_reward": float(returns.mean()),
            "completions/mean_length": float(lengths.mean()),
            "completions/min_length": float(lengths.min()),
            "completions/max_length": float(lengths.max()),
            "completions/eos_rate": float(distributed.gather(episodes.stopped).mean()),
        }

    def clip_and_step(self) -> float:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    # ---------------------------------------------------------------------------- use the policy
    @torch.no_grad()
    def predict(
        self,
        observation: dict[str, Any],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Next tokens for a batch of observations (or one), SB3-style: ``(actions, None)``.

        Each call runs the policy over the whole observation (no cache); agents' own rollouts use a
        KV cache instead.
        """
        ids, mask, single = observation_batch(observation, self.device)
        with self.autocast():
            logits, _ = self.policy.next_token(ids, mask)
        return predicted_actions(logits, self.config.temperature, deterministic, single), None

    @torch.no_grad()
    def generate(
        self, prompts: list[str], max_new_tokens: int | None = None, deterministic: bool = False
    ) -> list[str]:
        """Completions of raw prompts, formatted as the env formats them (chat template included)."""
        envs = self.envs
        encoded = [envs.encode_prompt(p) for p in prompts]
        width = max(len(ids) for ids in encoded)
        ids = torch.full((len(prompts), width), envs.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(encoded):
            ids[i, width - len(row) :], mask[i, width - len(row) :] = torch.tensor(row), 1
        with self.autocast():
            out = self.policy.generate(
                ids.to(self.device),
                mask.to(self.device),
                max_new_tokens=max_new_tokens or envs.generation_budget,
                do_sample=not deterministic,
                temperature=self.config.temperature if not deterministic else None,
                top_k=0 if not deterministic else None,
                top_p=None,
                pad_token_id=envs.pad_token_id,
                eos_token_id=list(self.policy.bundle.eos_token_ids),
            )
        return self.policy.bundle.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)

    @property
    def lm(self) -> torch.nn.Module:
        """The causal LM the policy samples from (its LoRA view under LoRA)."""
        return self.policy.lm

    def evaluate(
        self, episodes: int = 64, *, split: str = "test", seed: int = 0, env_id: str | None = None
    ) -> Evaluation:
        """Held-out figures of the current policy, sampled at its temperature (:func:`textgym.evaluate`).

        The evaluation env needs a reference model for KL and perplexity, so its KL shaping is on even for
        tasks that train without it (the coefficient changes returns only, none of the reported figures).
        """
        env_id = env_id or self.env_id
        if env_id is None:
            raise ValueError("this agent's env has no registered id: pass env_id=")
        return evaluate(
            self.policy.lm,
            env_id,
            episodes,
            split=split,
            seed=seed,
            num_envs=self.config.batch_size,
            temperature=self.config.temperature,
            model=self.envs.model,
            kl_coef=self.envs.kl_coef or 0.05,
        )

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; subclasses add their own entries."""
        return {
            "agent": type(self).__name__,
            "config": asdict(self.config),
            "env_id": self.env_id,
            "env_kwargs": {k: v for k, v in self.env_kwargs.items() if is_plain(v)},
            "iteration": self.iteration,
            "num_timesteps": self.num_timesteps,
            "policy": self.policy.trainable_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "kl_controller": self.envs.kl_controller.state_dict(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.policy.load_trainable_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.envs.kl_controller.load_state_dict(state["kl_controller"])
            self.load_extra_state(state)
            self.iteration = int(state["iteration"])
            self.num_timesteps = int(state["num_timesteps"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not fit this {type(self).__name__}: {exc!r}") from exc
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.world_size:
            # The state is global (same weights, optimizer and beta on every rank) and the prompts depend
            # on the global batch only, but each rank samples from its own stream.
            warnings.warn(
                f"resuming a run saved on {saved_world} process(es) on {self.world_size}: it continues from "
                f"the same state and prompts, but its samples differ from an uninterrupted run's",
                stacklevel=2,
            )

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Subclasses restore what they added to :meth:`state_dict`."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically: a crash mid-write never leaves a half-written file at ``path``.

        Data-parallel, only rank 0 writes: every rank holds the same weights, optimizer and KL controller.
        """
        if not distributed.is_main():
            return Path(path)
        return save_checkpoint({**self.state_dict(), "world_size": self.world_size}, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: str | TextEnv | TextVectorEnv | None = None, **overrides: Any
    ):
        """Rebuild an agent from a checkpoint (its env id and config), optionally on another env."""
        state = load_checkpoint(path, cls.__name__)
        config = {**state["config"], **overrides}
        agent = cls(env if env is not None else state["env_id"], env_kwargs=state["env_kwargs"], **config)
        agent._restore(state)
        return agent
