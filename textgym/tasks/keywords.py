"""Keywords: write one sentence that uses every concept of a set (constrained generation, CommonGen-style).

Each example shows 3 to 5 common English concepts (nouns and verbs in their base form, such as
``dog frisbee catch throw``) and asks for one sentence that uses all of them. The reward is the share of
concepts the first sentence uses, in any inflected form, less a small penalty for repeated words.
Word forms come from ``lemminflect``, whose lemma and inflection tables ship inside its wheel, so
scoring needs no data download.
"""

from __future__ import annotations

import zlib
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from textgym.rewards.keywords import (
    keyword_coverage,
)
from textgym.tasks.task import Example, Task

__all__ = ["KeywordsTask", "load_concept_sets"]


def load_concept_sets() -> list[tuple[str, ...]]:
    """The concept sets of ``textgym/tasks/data/concept_sets.txt``, one per line, in file order."""
    text = resources.files("textgym.tasks").joinpath("data/concept_sets.txt").read_text(encoding="utf-8")
    return [tuple(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


class KeywordsTask(Task):
    """Write one sentence that uses all of 3 to 5 given concepts.

    The prompt reads ``"Write one sentence that uses all of these words: dog, frisbee, catch, throw."``;
    the example column ``concepts`` holds the set as a list of words (in the order shown). The concept
    sets, written for textgym, live in ``textgym/tasks/data/concept_sets.txt``; a set belongs to the test
    split when the CRC-32 of its line falls in the lowest ``test_fraction`` of the range, so the split is
    fixed across runs and machines (97 of the 465 sets, 21%, at the default 0.2).
    """

    name: ClassVar[str] = "keywords"
    # SmolLM2's chat template adds 30 tokens (its default system prompt and role markers) to the prompt's
    # 16-22 (46-52 in all over the shipped sets): 64 leaves room for long concept words.
    prompt_budget: ClassVar[int] = 64
    # One sentence with 3-5 concepts takes 12-25 tokens; 40 leaves room for a longer one and its EOS
    # without rewarding rambles (only the first sentence counts anyway).
    generation_budget: ClassVar[int] = 40
    default_kl_coef: ClassVar[float] = 0.05
    optimal_score: ClassVar[float] = 1.0
    template: ClassVar[str] = "Write one sentence that uses all of these words: {}."

    def __init__(self, test_fraction: float = 0.2) -> None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.test_fraction = test_fraction
        self.sets: dict[str, list[tuple[str, ...]]] = {split: [] for split in self.splits}
        for concepts in load_concept_sets():
            self.sets[self.split_of(concepts)].append(concepts)

    def split_of(self, concepts: tuple[str, ...]) -> str:
        # A content hash rather than a stored list: adding sets to the file never moves existing ones.
        key = zlib.crc32(" ".join(concepts).encode()) % 1000
        return "test" if key < self.test_fraction * 1000 else "train"

    def prompt(self, concepts: tuple[str, ...] | list[str]) -> str:
        return self.template.format(", ".join(concepts))

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        concepts = self.sets[split][int(rng.integers(len(self.sets[split])))]
        return {"prompt": self.prompt(concepts), "concepts": list(concepts)}

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        return keyword_coverage(prompts, completions, **columns)
