"""Agent configs: dataclasses whose fields carry help text, in SB3's vocabulary where SB3 has a word.

Each field is declared with :func:`arg`, so its help reaches ``--help`` (:func:`config_help`) as
Hugging Face's ``HfArgumentParser`` reads it. Names SB3 users know (``gae_lambda``, ``n_epochs``,
``ent_coef``, ``clip_range_vf``, ``normalize_advantage``) replace textgym's first ones, which are still
accepted, with a ``FutureWarning``, until textgym 0.3.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

C = TypeVar("C", bound="AgentConfig")


def arg(default: Any, help: str) -> Any:
    """A config field with its default and the help text a command line shows."""
    return field(default=default, metadata={"help": help})


@dataclass
class AgentConfig:
    """What every LM agent is configured with; algorithms subclass it with their own fields."""

    renamed: ClassVar[dict[str, str]] = {}  # old field name -> new one, accepted with a FutureWarning

    learning_rate: float = arg(1e-5, "AdamW step size")
    batch_size: int = arg(8, "episodes per iteration (the vector env's width)")
    temperature: float = arg(1.0, "sampling temperature; log-probs are recomputed with the same one")
    kl_coef: float | None = arg(None, "beta of the KL shaping; None keeps the task's default")
    kl_target: float | None = arg(None, "nats per sequence: turns on the adaptive (Ziegler) KL controller")
    kl_horizon: int = arg(10_000, "episodes over which the adaptive controller corrects a KL error")
    ref_logprobs: str = arg(
        "episode_end",
        "when the env computes the reference's log-probs: 'episode_end' (one teacher-forced pass over "
        "the finished episodes; each token still gets its own KL term) or 'step' (a cached step per token)",
    )
    prompt_order: Literal["random", "epochs"] = arg(
        "random",
        "'random': each prompt drawn on its own (with replacement); 'epochs': through the train split's "
        "pool in a fresh seeded shuffle each epoch, without replacement, as TRL's sampler (finite tasks)",
    )
    max_grad_norm: float = arg(1.0, "gradient clipping (global L2 norm)")
    weight_decay: float = arg(0.0, "AdamW weight decay")
    seed: int = arg(0, "seeds prompts and sampling; the same seed gives the same run on CPU")
    device: str = arg("auto", "'auto': CUDA when available, else CPU")
    bf16: bool = arg(True, "bf16 autocast where the device supports it (CUDA); the CPU runs fp32")
    bf16_cpu: bool = arg(
        False, "bf16 autocast on the CPU too: slow without AMX; how the bf16 path is checked without a GPU"
    )
    gradient_checkpointing: bool = arg(False, "trade compute for memory on long sequences")
    lora_r: int = arg(0, "LoRA rank; 0 trains every weight, > 0 trains adapters only (needs peft)")
    lora_alpha: int = arg(16, "LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)")
    lora_target_modules: str = arg("all-linear", "which layers get adapters, in peft's syntax")
    checkpoint_every: int = arg(0, "iterations between checkpoints; 0: only at the end of learn()")
    checkpoint_dir: str | None = arg(None, "where checkpoints go; None: no checkpoints")
    log_dir: str | None = arg(None, "TensorBoard events and progress.csv; None: metrics stay in memory")


def build_config(cls: type[C], settings: dict[str, Any]) -> C:
    """``cls(**settings)``, taking renamed fields under their old names with a FutureWarning.

    Raises:
        TypeError: naming every unknown field and listing the known ones.
    """
    settings = dict(settings)
    for old, new in cls.renamed.items():
        if old not in settings:
            continue
        if new in settings:
            raise TypeError(f"{cls.__name__} got both {old!r} and its new name {new!r}: pass only {new!r}")
        warnings.warn(
            f"{cls.__name__}: {old!r} is now {new!r} (SB3's name); the old name goes in textgym 0.3",
            FutureWarning,
            stacklevel=3,
        )
        settings[new] = settings.pop(old)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; expected some of {sorted(known)}")
    return cls(**settings)


def config_help(cls: type[AgentConfig]) -> str:
    """One line per field: name, type, default and help text (what ``--help`` shows)."""
    lines = []
    for f in dataclasses.fields(cls):
        type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        lines.append(f"  {f.name} ({type_name}, default {f.default!r}): {f.metadata['help']}")
    return "\n".join(lines)
