"""TRL adapter: Hugging Face TRL's ``RLOOTrainer`` as a textgym agent, so ``textgym compare`` can rank it.

```python
import textgym
from textgym.agents.trl import TRLRLOO

agent = TRLRLOO("textgym/Sentiment-v0", seed=0, learning_rate=1e-5)  # the task's model, fresh
agent.learn(total_timesteps=25_600)  # RLOOTrainer.train() until 25,600 completion tokens are generated
textgym.evaluate(agent, "textgym/Sentiment-v0")  # samples agent.lm with a KV cache, as for our agents
agent.save("rloo")  # a folder: TRL's own checkpoint (weights, optimizer, scheduler, RNGs) + textgym.json
TRLRLOO.load("rloo").learn(total_timesteps=51_200)  # continues the same run (Trainer's resume)
```

TRL does not step an env: it generates whole completions with ``model.generate`` and scores them. The
adapter hands it what the env would use, read through the env's public face:

- the prompts: ``prompt_pool`` draws from the task's train split (duplicates dropped), as chat messages when
  the env applies the tokenizer's chat template, else as text, with the task's reward columns beside them;
  TRL's sampler shuffles that dataset and goes through it without replacement, epoch after epoch;
- the reward: the env's reward function on the decoded completions, with those columns;
- the completion budget (``max_completion_length`` = the env's ``generation_budget``), the model and its
  tokenizer, and beta (the env's ``kl_coef``: TRL subtracts ``beta`` times the summed k1 KL from the score,
  as the env does; TRL's beta is fixed, so an env with ``kl_target`` is refused).

The budget is counted as for every agent, in env steps: generated completion tokens, EOS included (the
reward function sees each batch's token ids and counts them). ``learn(total_timesteps=N)`` runs TRL's
``train()`` until the count reaches ``N``, at the end of the optimizer step that crosses it, and has the
Trainer write its checkpoint there; the next ``learn``, in this process or after :meth:`TRLRLOO.load`, is
``train(resume_from_checkpoint=...)`` from it. Both paths go through the same checkpoint, so a run resumed
after a stop gives the curve the uninterrupted run gives (on CPU).

Needs ``trl`` (``pip install 'textgym[bench]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from textgym.agents.checkpoint import CheckpointError, is_plain
from textgym.agents.config import arg, build_config
from textgym.agents.logger import MetricLogger
from textgym.agents.policy import last_real_column, observation_batch, predicted_actions
from textgym.models import ModelBundle, load_model, resolve_device
from textgym.models.cached_lm import position_ids_from_mask
from textgym.rewards.protocol import score_completions

META = "textgym.json"  # beside TRL's checkpoint files in a saved folder


@dataclass
class TRLRLOOConfig:
    """Settings of :class:`TRLRLOO`; each maps to the ``RLOOConfig`` field named in its help."""

    renamed: ClassVar[dict[str, str]] = {}

    learning_rate: float = arg(1e-5, "learning_rate (constant: lr_scheduler_type='constant', as our agents)")
    batch_size: int = arg(8, "per_device_train_batch_size: completions per optimizer step")
    num_generations: int = arg(2, "completions per prompt, the RLOO group (TRL's default 2)")
    num_iterations: int = arg(1, "optimizer steps per generated batch (TRL's PPO-style epochs; 1: on-policy)")
    temperature: float = arg(1.0, "sampling temperature (no top-k or top-p, as the env samples)")
    max_grad_norm: float = arg(1.0, "gradient clipping (global L2 norm)")
    weight_decay: float = arg(0.0, "AdamW weight decay")
    kl_coef: float | None = arg(None, "beta: TRL's KL coefficient; None: the env's kl_coef")
    prompt_pool: int = arg(2048, "train-split draws that make TRL's dataset (duplicates dropped)")
    seed: int = arg(0, "seeds the prompt pool, TRL's sampler and its generation (same run on CPU)")
    device: str = arg("auto", "'auto': CUDA when available, else CPU")
    bf16: bool = arg(True, "bf16 on a CUDA device that supports it; the CPU always runs fp32")
    log_dir: str | None = arg(None, "TensorBoard events and progress.csv of TRL's metrics; None: none")


class TRLRLOO:
    """TRL's ``RLOOTrainer`` on a textgym task, with SB3's surface (``learn``, ``predict``, ``save``...).

    Args:
        env_id: a registered textgym id.
        model: the model to train: a name or folder for :func:`textgym.models.load_model`, a
            ``ModelBundle`` sharing the env's tokenizer, or None for the env's own model. TRL loads its
            trainable copy and its reference from that model's folder.
        env_kwargs: the env's arguments (``model`` excepted): they decide the prompts' format, the
            reward, the budget and beta.
        config: :class:`TRLRLOOConfig` fields; unknown names are an error.
    """

    config_class: ClassVar[type[TRLRLOOConfig]] = TRLRLOOConfig

    def __init__(
        self,
        env_id: str,
        model: str | ModelBundle | None = None,
        env_kwargs: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        try:
            import trl  # noqa: F401
        except ImportError as exc:
            raise ImportError("the trl-rloo agent needs TRL: pip install 'textgym[bench]'") from exc

        self.config = cfg = build_config(self.config_class, config)
        self.device = resolve_device(cfg.device)
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.model_name = model if isinstance(model, str) else None
        if self.env_kwargs.get("kl_target") is not None:
            raise ValueError(
                f"TRL's RLOO has a fixed beta; got kl_target={self.env_kwargs['kl_target']!r}: drop it and "
                f"set kl_coef"
            )
        if self.env_kwargs.get("stop_sequences"):
            raise ValueError(
                f"the trl-rloo agent does not take the env's stop_sequences "
                f"({self.env_kwargs['stop_sequences']!r}): TRL stops at EOS and the budget only"
            )
        bundle = load_model(model, device=self.device) if isinstance(model, str) else model
        env_kwargs = {**self.env_kwargs, "device": str(self.device)}
        if bundle is not None:
            env_kwargs["model"] = bundle
        env = gym.make(env_id, **env_kwargs).unwrapped
        self.bundle: ModelBundle = env.model
        self.beta = env.kl_coef if cfg.kl_coef is None else cfg.kl_coef
        self.reward_fn, self.generation_budget = env.reward_fn, env.generation_budget
        self.workdir = tempfile.TemporaryDirectory(prefix="textgym-trl-")  # TRL's output_dir
        self.num_timesteps = 0
        self.target = 0  # the total the running learn() stops at
        self.resume_from: str | None = None  # the checkpoint the next learn() continues from
        self.dataset, self.columns = self._dataset(env, cfg)
        env.close()
        self.trainer = self._trainer()

    # ------------------------------------------------------------------------------------ TRL's parts
    @staticmethod
    def _dataset(env: Any, cfg: TRLRLOOConfig) -> tuple[Any, list[str]]:
        from datasets import Dataset

        rng = np.random.default_rng(cfg.seed)
        examples = {}
        for _ in range(cfg.prompt_pool):
            example = env.task.sample(rng, "train")
            examples.setdefault(example["prompt"], example)
        # A task with fewer prompts than one step takes (Pattern-v0 has one) repeats them: TRL's sampler
        # yields only whole batches.
        pool = list(examples.values()) * -(-(cfg.batch_size // cfg.num_generations) // len(examples))
        columns = sorted({k for ex in pool for k in ex} - {"prompt"})
        chat = env.uses_chat_template
        data = {
            "prompt": [[{"role": "user", "content": ex["prompt"]}] if chat else ex["prompt"] for ex in pool],
            **{c: [ex[c] for ex in pool] for c in columns},
        }
        return Dataset.from_dict(data), columns

    def _model_folder(self) -> str:
        """A folder holding the starting weights: TRL loads the policy and its reference from it."""
        folder = getattr(self.bundle.model, "name_or_path", "")
        if folder and (Path(folder) / "config.json").is_file():
            return folder
        folder = os.path.join(self.workdir.name, "initial")
        if not os.path.isdir(folder):  # a model built in memory (the toy tasks' tiny ones)
            self.bundle.model.save_pretrained(folder)
        return folder

    def _trainer(self) -> Any:
        from transformers import PrinterCallback, TrainerCallback
        from trl import RLOOConfig, RLOOTrainer

        cfg, agent = self.config, self

        class Budget(TrainerCallback):
            """Stops (and checkpoints) at the end of the step whose completions reach the target."""

            def on_step_end(self, args, state, control, **kwargs):
                if agent.num_timesteps >= agent.target:
                    control.should_training_stop = control.should_save = True

            def on_log(self, args, state, control, logs=None, **kwargs):
                if agent.logger is not None and logs and "train_runtime" not in logs:  # not the run summary
                    metrics = {k: v for k, v in logs.items() if isinstance(v, int | float)}
                    agent.logger.log(
                        state.global_step, {**metrics, "time/total_timesteps": agent.num_timesteps}
                    )

        tokenizer, eos = self.bundle.tokenizer, set(self.bundle.eos_token_ids)

        def score(prompts, completions, completion_ids, **kwargs):
            agent.num_timesteps += sum(len(ids) for ids in completion_ids)
            # Decoded as the env decodes (special tokens kept, a final EOS dropped), not TRL's
            # skip_special_tokens text: a policy must not gain by emitting tokens that print as nothing.
            texts = [tokenizer.decode(ids[:-1] if ids and ids[-1] in eos else ids) for ids in completion_ids]
            prompts = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
            columns = {c: kwargs[c] for c in agent.columns}
            return score_completions(agent.reward_fn, prompts, texts, **columns).tolist()

        cuda = self.device.type == "cuda"
        args = RLOOConfig(
            output_dir=self.workdir.name,
            use_cpu=not cuda,
            bf16=cfg.bf16 and cuda and torch.cuda.is_bf16_supported(),
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=1,
            num_generations=cfg.num_generations,
            num_iterations=cfg.num_iterations,
            max_completion_length=self.generation_budget,
            temperature=cfg.temperature,
            beta=self.beta,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="constant",
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            gradient_checkpointing=False,
            max_steps=1,  # learn() sets it: the budget callback ends training
            logging_steps=1,
            save_strategy="no",  # the budget callback asks for the one checkpoint learn() needs
            save_total_limit=1,
            report_to="none",  # the callback logs TRL's metrics to progress.csv and TensorBoard
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=cfg.seed,
        )
        self.logger: MetricLogger | None = None
        trainer = RLOOTrainer(
            model=self._model_folder(),
            reward_funcs=score,
            args=args,
            train_dataset=self.dataset,
            processing_class=self.bundle.tokenizer,
            callbacks=[Budget()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every step's metrics; they go to log_dir
        return trainer

    @property
    def lm(self) -> nn.Module:
        """The causal LM TRL trains; :func:`textgym.evaluate` samples it with a KV cache, with its KL."""
        return self.trainer.model

    # ---------------------------------------------------------------------------------- SB3's surface
    def learn(self, total_timesteps: int) -> TRLRLOO:
        """Train until ``total_timesteps`` generated tokens since the run's start (the Agent protocol's
        count), ending at the optimizer step that reaches it."""
        if total_timesteps <= self.num_timesteps:
            return self
        self.target = total_timesteps
        # Each step generates at least one token per completion: an upper bound that never binds.
        self.trainer.args.max_steps = self.trainer.state.global_step + total_timesteps
        self.logger = MetricLogger(self.config.log_dir, start_iteration=self._global_step() + 1)
        try:
            self.trainer.train(resume_from_checkpoint=self.resume_from)
        finally:
            self.logger.close()
            self.logger = None
        self.resume_from = os.path.join(self.workdir.name, f"checkpoint-{self.trainer.state.global_step}")
        return self

    def _global_step(self) -> int:
        """TRL's optimizer steps so far (a loaded agent's are in the checkpoint it resumes from)."""
        if self.resume_from is None:
            return self.trainer.state.global_step
        return json.loads((Path(self.resume_from) / "trainer_state.json").read_text())["global_step"]

    @torch.no_grad()
    def predict(
        self,
        observation: dict[str, Any],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Next tokens of one observation ``(L,)`` or a batch ``(B, L)``, SB3-style: ``(actions, None)``.

        One full forward per call, read at each row's last real column; sampling at the config's
        temperature from torch's global generator.
        """
        ids, mask, single = observation_batch(observation, self.lm.device)
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask))
        logits = out.logits[torch.arange(len(ids)), last_real_column(mask)].float()  # (B, V)
        return predicted_actions(logits, self.config.temperature, deterministic, single), None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """A folder: TRL's checkpoint of the last ``learn`` (weights, optimizer, scheduler, RNG states,
        trainer state) and ``textgym.json`` (env, model, config, env steps). Written beside ``path`` first,
        then renamed into place."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if self.resume_from is not None:
            shutil.copytree(self.resume_from, tmp)
        else:  # not trained yet: the starting weights, so that the folder is a model too
            self.lm.save_pretrained(tmp)
        meta = {
            "agent": type(self).__name__,
            "config": asdict(self.config),
            "env_id": self.env_id,
            "env_kwargs": {k: v for k, v in self.env_kwargs.items() if is_plain(v)},
            "model": self.model_name,
            "num_timesteps": self.num_timesteps,
            "trained": self.resume_from is not None,
        }
        (tmp / META).write_text(json.dumps(meta, indent=1))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], model: str | ModelBundle | None = None, **overrides: Any
    ) -> TRLRLOO:
        """Rebuild an agent from :meth:`save`'s folder; its next ``learn`` resumes TRL's run there.

        ``model`` is needed only when it was a ``ModelBundle`` other than the env's default (only a name is
        saved); ``overrides`` replace config fields.
        """
        path = Path(path)
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"{str(path)!r} is not a {cls.__name__} checkpoint folder (no readable {META}: {exc})"
            ) from exc
        if meta.get("agent") != cls.__name__:
            raise CheckpointError(
                f"{str(path)!r} holds a {meta.get('agent')} checkpoint, not a {cls.__name__} one"
            )
        agent = cls(
            meta["env_id"],
            model if model is not None else meta["model"],
            env_kwargs=meta["env_kwargs"],
            **{**meta["config"], **overrides},
        )
        from transformers import AutoModelForCausalLM

        try:  # the trained weights now, for evaluation; learn() also restores the optimizer and RNGs
            weights = AutoModelForCausalLM.from_pretrained(path, dtype=agent.lm.dtype).state_dict()
            agent.lm.load_state_dict(weights)
        except (OSError, RuntimeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit this {cls.__name__}: {exc!r}"
            ) from exc
        agent.num_timesteps = int(meta["num_timesteps"])
        agent.resume_from = str(path) if meta["trained"] else None
        return agent
