"""The task behind an environment: which prompts it draws, how it scores completions, which model it uses."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from textgym.models import DEFAULT_MODEL, ModelBundle, load_model

Example = dict[str, Any]  # {"prompt": str, **columns}; the columns reach the reward as keyword lists


class Task:
    """Base class of text tasks.

    A task draws examples (a prompt plus the columns its reward needs, TRL-style) from a NumPy generator,
    and scores finished completions with a reward function of the TRL signature
    ``reward(prompts, completions, **columns) -> list[float]``.

    Subclasses set the class attributes and implement :meth:`sample` and :meth:`reward`.
    """

    name: ClassVar[str]  # short name, used in ids and logs
    default_model: ClassVar[str] = (
        DEFAULT_MODEL  # model name for load_model, unless build_model is overridden
    )
    prompt_budget: ClassVar[int]  # maximum prompt length in tokens
    generation_budget: ClassVar[int]  # maximum number of generated tokens
    default_kl_coef: ClassVar[float] = 0.05  # beta of the KL shaping (TRL's current default)
    optimal_score: ClassVar[float | None] = None  # best achievable score, when known
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        """Draw one example of ``split`` using only ``rng``."""
        raise NotImplementedError

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        """Score finished completions (the task's own reward function)."""
        raise NotImplementedError

    def build_model(self, device: str = "cpu") -> ModelBundle:
        """The model the task runs on when the user names none."""
        return load_model(self.default_model, device=device)

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has splits {self.splits}, got split={split!r}")
