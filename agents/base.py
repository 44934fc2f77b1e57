"""What the LM agents share: the env and the policy, the learn loop, logging, checkpoints, predict/save/load.

An algorithm subclasses :class:`LMAgent`, declares its config dataclass, and implements
:meth:`LMAgent.update`, one policy update from a batch of finished episodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from agents.logger import MetricLogger
from textgym.envs import TextEnv, TextVectorEnv
from textgym.models import ModelBundle, load_model
from textgym.models.cached_lm import position_ids_from_mask
from textgym.rollout import Episodes, sample_episodes

CHECKPOINT_FORMAT = "textgym-agent-v1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or from another agent."""


@dataclass
class AgentConfig:
    learning_rate: float = 1e-5  # AdamW step size
    batch_size: int = 8  # episodes per iteration (the vector env's width)
    temperature: float = 1.0  # sampling temperature; log-probs are recomputed with the same one
    kl_coef: float | None = None  # beta of the KL shaping; None keeps the task's default
    kl_target: float | None = None  # nats per sequence: turns on the adaptive (Ziegler) controller
    kl_horizon: int = 10_000  # episodes over which the adaptive controller corrects a KL error
    max_grad_norm: float = 1.0  # gradient clipping (global L2 norm)
    weight_decay: float = 0.0  # AdamW weight decay
    seed: int = 0  # seeds prompts and sampling; the same seed gives the same run on CPU
    device: str = "auto"  # "auto": CUDA when available, else CPU
    bf16: bool = True  # bf16 autocast where the device supports it (CUDA); the CPU always runs fp32
    gradient_checkpointing: bool = False  # trade compute for memory on long sequences
    lora_r: int = 0  # LoRA rank; 0 trains every weight, > 0 trains adapters only (needs peft)
    lora_alpha: int = 16  # LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)
    lora_target_modules: str = "all-linear"  # which layers get adapters, in peft's syntax
    checkpoint_every: int = 0  # iterations between checkpoints; 0: only at the end of learn()
    checkpoint_dir: str | None = None  # where checkpoints go; None: no checkpoints
    log_dir: str | None = None  # TensorBoard events and progress.csv; None: metrics stay in memory


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class LMAgent:
    """Base class of on-policy agents that train a causal LM on a textgym task.

    Args:
        env: a textgym env id, a single :class:`TextEnv` (its id and arguments are reused), or a
            :class:`TextVectorEnv` made with ``autoreset_mode=DISABLED`` and ``num_envs=batch_size``.
        policy: a model name or path, or a ``ModelBundle`` sharing the env's tokenizer. Defaults to the
            env's model (loaded once: the env keeps the frozen copy as its reference, the agent trains
            a copy).
        env_kwargs: extra ``gym.make_vec`` arguments when ``env`` is an id.
        config: fields of the algorithm's config dataclass; unknown names are an error.
    """

    config_class: ClassVar[type[AgentConfig]] = AgentConfig

    def __init__(
        self,
        env: str | TextEnv | TextVectorEnv,
        policy: str | ModelBundle | None = None,
        env_kwargs: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise TypeError(
                f"unknown {self.config_class.__name__} field(s) {unknown}; expected some of {sorted(known)}"
            )
        self.config = self.config_class(**config)
        self.device = resolve_device(self.config.device)
        self.envs = self._make_envs(env, dict(env_kwargs or {}))
        batch = self.envs.batch
        if policy is None:
            bundle = batch.policy
        elif isinstance(policy, ModelBundle):
            bundle = policy
        else:
            bundle = load_model(policy, device=self.device)
        if bundle.vocab_size != batch.vocab_size:
            raise ValueError(
                f"policy {bundle.name!r} has {bundle.vocab_size} logits but the env's actions are "
                f"Discrete({batch.vocab_size}): they must share a tokenizer"
            )
        if self.config.lora_r > 0:
            # One copy of the weights: the adapter goes into the shared frozen model, switched on only
            # inside this agent's own forward passes, so the env's reference (the same module) and every
            # other holder of the model see the base weights.
            self.bundle = bundle
            self.policy: torch.nn.Module = AdapterView(bundle.model, self._lora_config())
        else:
            self.bundle = bundle.trainable_copy()
            self.policy = self.bundle.model
        self.model = self.bundle.model
        if self.config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
            if self.config.lora_r > 0:
                self.model.enable_input_require_grads()  # frozen embeddings would cut the gradient
        self.iteration = 0
        self.num_timesteps = 0  # generated tokens so far (SB3's count: one env step is one token)
        self.logger = MetricLogger(None)
        self.build()
        self.optimizer = torch.optim.AdamW(
            self.param_groups(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )

    # ------------------------------------------------------------------------------------ set-up
    def _make_envs(self, env: str | TextEnv | TextVectorEnv, env_kwargs: dict[str, Any]) -> TextVectorEnv:
        cfg = self.config
        if isinstance(env, TextVectorEnv):
            if env.metadata["autoreset_mode"] != AutoresetMode.DISABLED or env.num_envs != cfg.batch_size:
                raise ValueError(
                    f"a vector env for an agent needs autoreset_mode=DISABLED and num_envs=batch_size="
                    f"{cfg.batch_size}, got {env.metadata['autoreset_mode']} and {env.num_envs}"
                )
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
        for key in ("kl_coef", "kl_target", "kl_horizon"):
            if getattr(cfg, key) is not None and key not in env_kwargs:
                env_kwargs[key] = getattr(cfg, key)
        self.env_id, self.env_kwargs = env, env_kwargs
        envs = gym.make_vec(
            env,
            num_envs=cfg.batch_size,
            vectorization_mode="vector_entry_point",
            autoreset_mode=AutoresetMode.DISABLED,
            device=str(self.device),
            **env_kwargs,
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
        """Create algorithm-specific modules (e.g. a value head) before the optimizer is made."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """The trained parameters: every weight, or only the LoRA adapter's."""
        if isinstance(self.policy, AdapterView):
            return self.policy.adapter_parameters()
        return list(self.model.parameters())

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups; an algorithm may give some (a value head) their own step size."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def train_mode(self) -> None:
        # A LoRA agent shares its module with the env's reference: leave it in eval mode (its adapter
        # has no dropout, so the two modes compute the same).
        if not isinstance(self.policy, AdapterView):
            self.model.train()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.config.bf16 and self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --------------------------------------------------------------------------------- rollouts
    def episode_seeds(self, iteration: int) -> list[int]:
        """Env seeds of an iteration: a function of the run's seed and the iteration, so resumes replay."""
        base = (self.config.seed * 1_000_003 + iteration * self.config.batch_size) % 2**31
        group = self.group_size()
        return [base + i // group for i in range(self.config.batch_size)]

    def group_size(self) -> int:
        """Episodes per prompt (RLOO/GRPO sample several); 1 otherwise."""
        return 1

    def collect(self, iteration: int) -> Episodes:
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed * 7919 + iteration)
        self.model.eval()
        with self.autocast():
            return sample_episodes(
                self.envs,
                self.policy,
                seed=self.episode_seeds(iteration),
                temperature=self.config.temperature,
                generator=generator,
            )

    def completion_mask(self, episodes: Episodes) -> torch.Tensor:
        """``(N, T)`` float, 1 on generated tokens."""
        T = episodes.tokens.shape[1]
        lengths = torch.as_tensor(episodes.lengths, device=self.device)
        return (torch.arange(T, device=self.device)[None, :] < lengths[:, None]).float()

    def forward_tokens(
        self, episodes: Episodes, rows: torch.Tensor | slice = slice(None), hidden: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Teacher-forced pass over prompt + completion of ``rows``, with gradients.

        Returns:
            logprobs ``(R, T)`` of the generated tokens at the sampling temperature, entropy ``(R, T)`` of
            the policy at each generated position, and the last hidden state ``(R, T, H)`` there (when
            ``hidden``) for value heads.
        """
        prompt_ids, prompt_mask = episodes.prompt_ids[rows], episodes.prompt_mask[rows]
        tokens, mask = episodes.tokens[rows], self.completion_mask(episodes)[rows].long()
        P, T = prompt_ids.shape[1], tokens.shape[1]
        width = int(prompt_mask.sum(-1).max())  # columns left of the widest prompt are padding everywhere
        ids = torch.cat([prompt_ids[:, P - width :], tokens], dim=1)  # (R, width + T)
        attention = torch.cat([prompt_mask[:, P - width :], mask], dim=1)
        with self.autocast():
            out = self.policy(
                input_ids=ids,
                attention_mask=attention,
                position_ids=position_ids_from_mask(attention),
                output_hidden_states=hidden,
                # The LM head only where a generated token is predicted (columns width-1 onwards): on a
                # 49k vocabulary it is a fifth of the forward pass, and prompts are the longer part.
                logits_to_keep=T + 1,
            )
        logits = out.logits[:, :T].float() / self.config.temperature  # (R, T, V)
        logp_all = torch.log_softmax(logits, -1)
        logprobs = logp_all.gather(-1, tokens[..., None])[..., 0]
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        states = out.hidden_states[-1][:, width - 1 : width - 1 + T].float() if hidden else None
        return logprobs, entropy, states

    # ------------------------------------------------------------------------------------ learn
    def update(self, episodes: Episodes, iteration: int) -> dict[str, float]:
        """One policy update from a batch of finished episodes; returns its metrics."""
        raise NotImplementedError

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
            callback: called after each iteration with the agent and its metrics; returning False stops.
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
            self._restore(torch_load_checkpoint(resume, type(self).__name__))
        if total_episodes is not None:
            total, unit = math.ceil(total_episodes / self.config.batch_size), "it"

            def progress() -> int:
                return self.iteration
        else:
            total, unit = total_timesteps, "tok"

            def progress() -> int:
                return self.num_timesteps

        self.logger = MetricLogger(self.config.log_dir, start_iteration=self.iteration)
        bar = tqdm(
            total=total, initial=progress(), unit=unit, disable=not progress_bar, desc=type(self).__name__
        )
        try:
            while progress() < total:
                start = time.perf_counter()
                episodes = self.collect(self.iteration)
                self.train_mode()
                metrics = self.update(episodes, self.iteration)
                metrics.update(self.episode_metrics(episodes))
                tokens = int(episodes.lengths.sum())
                metrics["perf/tokens_per_second"] = tokens / (time.perf_counter() - start)
                metrics["objective/kl_coef"] = self.envs.kl_coef
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
                if self.config.checkpoint_dir and every and self.iteration % every == 0:
                    self.save(Path(self.config.checkpoint_dir) / f"iteration-{self.iteration}.pt")
                if callback is not None and callback(self, metrics) is False:
                    break
        finally:
            bar.close()
            self.logger.close()
        if self.config.checkpoint_dir:
            self.save(Path(self.config.checkpoint_dir) / "last.pt")
        return self

    def episode_metrics(self, episodes: Episodes) -> dict[str, float]:
        """TRL-style rollout figures."""
        beta = self.envs.kl_coef
        kl = np.nan_to_num(episodes.kl)
        return {
            "objective/scores": float(episodes.scores.mean()),
            "objective/kl": float(kl.mean()),
            "objective/non_score_reward": float((-beta * kl).mean()),
            "objective/rlhf_reward": float((episodes.scores - beta * kl).mean()),
            "completions/mean_length": float(episodes.lengths.mean()),
            "completions/min_length": float(episodes.lengths.min()),
            "completions/max_length": float(episodes.lengths.max()),
            "completions/eos_rate": float(episodes.stopped.mean()),
        }

    def clip_and_step(self) -> float:
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.config.max_grad_norm)
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
        ids = torch.as_tensor(np.asarray(observation["input_ids"]), device=self.device).long()
        mask = torch.as_tensor(np.asarray(observation["attention_mask"]), device=self.device).long()
        single = ids.ndim == 1
        ids, mask = (ids[None], mask[None]) if single else (ids, mask)
        # Each row's last real token is where the next one is predicted from.
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
        with self.autocast():
            logits = self.policy(
                input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)
            ).logits
        logits = logits[torch.arange(len(ids)), last, : self.envs.batch.vocab_size].float()
        if deterministic:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(logits / self.config.temperature, -1), 1)[:, 0]
        actions = actions.cpu().numpy()
        return (actions[0] if single else actions), None

    @torch.no_grad()
    def generate(
        self, prompts: list[str], max_new_tokens: int | None = None, deterministic: bool = False
    ) -> list[str]:
        """Completions of raw prompts, formatted as the env formats them (chat template included)."""
        batch = self.envs.batch
        encoded = [batch.encode_prompt(p) for p in prompts]
        width = max(len(ids) for ids in encoded)
        ids = torch.full((len(prompts), width), batch.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(encoded):
            ids[i, width - len(row) :], mask[i, width - len(row) :] = torch.tensor(row), 1
        adapter = self.policy.enabled() if isinstance(self.policy, AdapterView) else contextlib.nullcontext()
        with self.autocast(), adapter:
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max_new_tokens or batch.generation_budget,
                do_sample=not deterministic,
                temperature=self.config.temperature if not deterministic else None,
                top_k=0 if not deterministic else None,
                top_p=None,
                pad_token_id=batch.pad_token_id,
                eos_token_id=list(self.bundle.eos_token_ids),
            )
        return self.bundle.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; subclasses add their own entries."""
        return {
            "format": CHECKPOINT_FORMAT,
            "agent": type(self).__name__,
            "config": asdict(self.config),
            "env_id": getattr(self, "env_id", None),
            "env_kwargs": {k: v for k, v in getattr(self, "env_kwargs", {}).items() if _plain(v)},
            "iteration": self.iteration,
            "num_timesteps": self.num_timesteps,
            "model": (
                self.policy.adapter_state_dict()
                if isinstance(self.policy, AdapterView)
                else self.model.state_dict()
            ),
            "optimizer": self.optimizer.state_dict(),
            "kl_controller": self.envs.batch.kl.state_dict(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            if isinstance(self.policy, AdapterView):
                self.policy.load_adapter_state_dict(state["model"])
            else:
                self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.envs.batch.kl.load_state_dict(state["kl_controller"])
            self.load_extra_state(state)
            self.iteration = int(state["iteration"])
            self.num_timesteps = int(state["num_timesteps"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not fit this {type(self).__name__}: {exc!r}") from exc

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Subclasses restore what they added to :meth:`state_dict`."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically: a crash mid-write never leaves a half-written file at ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: str | TextEnv | TextVectorEnv | None = None, **overrides: Any
    ):
        """Rebuild an agent from a checkpoint (its env id and config), optionally on another env."""
        state = torch_load_checkpoint(path, cls.__name__)
        config = {**state["config"], **overrides}
        agent = cls(env if env is not None else state["env_id"], env_kwargs=state["env_kwargs"], **config)
        agent._restore(state)
        return agent


class AdapterView(torch.nn.Module):
    """A causal LM with a LoRA adapter that is active only inside this view's calls.

    The adapter is added to ``model`` in place under a name of its own (several agents can share one
    model) and the model's adapters are switched off after every call, so holders of the plain module
    (the env's reference) compute with the base weights.
    """

    _count = 0

    def __init__(self, model: torch.nn.Module, lora_config: Any) -> None:
        super().__init__()
        AdapterView._count += 1
        self.name = f"textgym-{AdapterView._count}"
        self.lm = model
        model.add_adapter(lora_config, adapter_name=self.name)
        self._switch_off()

    def _switch_off(self) -> None:
        self.lm.disable_adapters()
        # peft also freezes a disabled adapter; ours must stay trainable (its gradients come from
        # forward passes inside enabled(), and the optimizer holds its parameters).
        for p in self.adapter_parameters():
            p.requires_grad_(True)

    @contextlib.contextmanager
    def enabled(self):
        self.lm.enable_adapters()
        self.lm.set_adapter(self.name)
        try:
            yield
        finally:
            self._switch_off()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.enabled():
            return self.lm(*args, **kwargs)

    def adapter_parameters(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.lm.named_parameters() if f".{self.name}." in n]

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter's weights, named without this view's adapter name so that they reload anywhere."""
        return {
            n.replace(f".{self.name}.", ".{adapter}."): p.detach().clone()
            for n, p in self.lm.named_parameters()
            if f".{self.name}." in n
        }

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.lm.named_parameters())
        expected = {n.replace(f".{self.name}.", ".{adapter}.") for n in params if f".{self.name}." in n}
        if set(state) != expected:
            raise ValueError(
                f"adapter weights do not match: expected {len(expected)} tensors, got {len(state)}"
            )
        with torch.no_grad():
            for key, value in state.items():
                params[key.replace(".{adapter}.", f".{self.name}.")].copy_(value)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def torch_load_checkpoint(path: str | os.PathLike[str], agent: str) -> dict[str, Any]:
    """Read and validate a checkpoint, or raise :class:`CheckpointError` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}: expected a file written by {agent}.save()")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a textgym checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a {CHECKPOINT_FORMAT} checkpoint")
    if state.get("agent") != agent:
        raise CheckpointError(f"{str(path)!r} holds a {state.get('agent')} checkpoint, not a {agent} one")
    return state
