"""The task behind an environment: which prompts it draws, how it scores completions, which model it uses.

A task lives in one file of ``textgym/tasks/`` together with its data and its env class, whose
docstring is the manual (see ``CONTRIBUTING.md``). This module holds what every task shares: the
:class:`Task` base class, the metadata tooling reads (:class:`TaskInfo`) and the content-hash split
(:meth:`Task.split_of`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from textgym.models import DEFAULT_MODEL, ModelBundle, load_model, tiny_model

Example = dict[str, Any]  # {"prompt": str, **columns}; the columns reach the reward as keyword lists

TINY = "tiny"
"""The ``default_model`` of tasks that run on a tiny model built from their own :meth:`Task.corpus`."""


def check_test_fraction(test_fraction: float) -> float:
    """``test_fraction`` as a float, or a ValueError naming it: a split needs both sides non-empty."""
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not (0.0 < test_fraction < 1.0)
    ):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    return float(test_fraction)


@dataclass(frozen=True)
class TaskInfo:
    """What tooling (``textgym list``, tables) shows of a task without reading its manual."""

    name: str
    description: str  # one line
    default_model: str  # a name for load_model, or "tiny"
    prompt_budget: int  # tokens
    generation_budget: int  # tokens
    score_range: tuple[float, float]  # (lowest, highest) score the reward can pay
    optimal_score: float | None  # best achievable score, when known
    default_kl_coef: float


class Task:
    """Base class of text tasks.

    A task draws examples (a prompt plus the columns its reward needs, TRL-style) from a NumPy generator,
    and scores finished completions with a reward function of the TRL signature
    ``reward(prompts, completions, **columns) -> list[float]``.

    Subclasses set the class attributes (or, where they depend on constructor arguments, the instance
    attributes of the same names) and implement :meth:`sample` and :meth:`reward`; a task on a tiny
    model also implements :meth:`corpus`.
    """

    name: ClassVar[str]  # short name, used in logs
    description: ClassVar[str]  # one line, for listings
    default_model: ClassVar[str] = DEFAULT_MODEL  # name for load_model, or TINY
    prompt_budget: ClassVar[int]  # maximum prompt length in tokens
    generation_budget: ClassVar[int]  # maximum number of generated tokens
    default_kl_coef: ClassVar[float] = 0.05  # beta of the KL shaping (TRL's current default)
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)  # what the reward can pay
    optimal_score: ClassVar[float | None] = None  # best achievable score, when known
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    test_fraction: float = 0.2  # share held out by split_of; an argument is checked by check_test_fraction

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        """Draw one example of ``split`` using only ``rng``."""
        raise NotImplementedError

    def examples(self, split: str) -> Sequence[Example]:
        """Every example of ``split``, in a fixed order, for a task that draws from a finite pool: what an
        agent with ``prompt_order="epochs"`` goes through and the env's ``reset(options={"example_index":
        ...})`` picks from. Tasks that draw from an unbounded space (generated problems) raise
        NotImplementedError."""
        raise NotImplementedError(
            f"task {self.name!r} draws its examples from an unbounded space: it has no finite pool to go "
            f"through in epochs (use prompt_order='random')"
        )

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        """Score finished completions (the task's own reward function)."""
        raise NotImplementedError

    def demonstration(self, example: Example) -> str:
        """A good completion of ``example``, written out (what SFT imitates); tasks with no way to write
        one raise NotImplementedError and take demonstrations from a file instead."""
        raise NotImplementedError(f"task {self.name!r} writes no demonstrations; give SFT a file of them")

    def corpus(self) -> list[str]:
        """Lines covering every word the task can show or expect: the tiny model's vocabulary."""
        raise NotImplementedError(f"task {self.name!r} runs on a tiny model but defines no corpus()")

    def build_model(self, device: str = "cpu") -> ModelBundle:
        """The model the task runs on when the user names none (``"tiny"``: built from :meth:`corpus`)."""
        if self.default_model == TINY:
            return tiny_model(self.corpus(), device=device)
        return load_model(self.default_model, device=device)

    def split_of(self, key: str) -> str:
        """``"test"`` for about ``test_fraction`` of keys, chosen by the CRC-32 of ``key``, else ``"train"``.

        A content hash rather than a stored list or line positions: an item's split is fixed across runs
        and machines, and stays put when items are added, removed or reordered.
        """
        return "test" if zlib.crc32(key.encode("utf-8")) % 1000 < self.test_fraction * 1000 else "train"

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has splits {self.splits}, got split={split!r}")

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description=self.description,
            default_model=self.default_model,
            prompt_budget=int(self.prompt_budget),
            generation_budget=int(self.generation_budget),
            score_range=tuple(self.score_range),
            optimal_score=self.optimal_score,
            default_kl_coef=self.default_kl_coef,
        )
