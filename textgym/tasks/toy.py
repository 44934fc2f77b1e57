"""The toy suite: three symbol tasks of graded difficulty with a known optimum of 1.0.

They run on a tiny model built in seconds from the task's own vocabulary, so an RL agent can learn them
on a CPU in minutes; they are textgym's bsuite. Any other causal LM can be named instead: the prompts
are plain text.
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

import numpy as np

from textgym.models import ModelBundle, load_model, tiny_model
from textgym.rewards.sequence_match import sequence_match
from textgym.tasks.task import Example, Task

SYMBOLS = ("a", "b", "c", "d", "e", "f", "g", "h")


class SymbolTask(Task):
    """Shared machinery of the toy tasks: symbol strings, a hash-based split and the tiny model."""

    default_model: ClassVar[str] = "tiny"  # built from the task's vocabulary by build_model
    prompt_budget: ClassVar[int] = 64  # room for a chat template's system prompt when a chat model is named
    default_kl_coef: ClassVar[float] = 0.0  # a randomly initialised reference is no prior worth staying near
    optimal_score: ClassVar[float] = 1.0
    instruction: ClassVar[str]

    def __init__(self, min_length: int = 2, max_length: int = 4, test_fraction: float = 0.2) -> None:
        if not 1 <= min_length <= max_length:
            raise ValueError(f"expected 1 <= min_length <= max_length, got {min_length} and {max_length}")
        self.min_length, self.max_length, self.test_fraction = min_length, max_length, test_fraction
        self.generation_budget = max_length + 2  # room for the answer, its EOS and one spare token

    def split_of(self, symbols: str) -> str:
        # A content hash rather than a stored list: the split is fixed across runs and machines.
        return "test" if zlib.crc32(symbols.encode()) % 1000 < self.test_fraction * 1000 else "train"

    def target(self, symbols: str) -> str:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        while True:
            length = int(rng.integers(self.min_length, self.max_length + 1))
            symbols = " ".join(SYMBOLS[int(i)] for i in rng.integers(0, len(SYMBOLS), size=length))
            if self.split_of(symbols) == split:
                return {"prompt": f"{self.instruction} {symbols}", "target": self.target(symbols)}

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        return sequence_match(prompts, completions, **columns)

    def corpus(self) -> list[str]:
        """Lines covering every word the task can show or expect, for the tiny model's tokenizer."""
        rng = np.random.default_rng(0)
        examples = [self.sample(rng, split) for split in self.splits for _ in range(50)]
        return [" ".join(SYMBOLS)] + [f"{ex['prompt']} {ex['target']}" for ex in examples]

    def build_model(self, device: str = "cpu") -> ModelBundle:
        if self.default_model != "tiny":
            return load_model(self.default_model, device=device)
        return tiny_model(self.corpus(), device=device)


class PatternTask(SymbolTask):
    """Write one fixed secret pattern, whatever the prompt says: a bandit over sequences (easiest)."""

    name: ClassVar[str] = "pattern"
    instruction: ClassVar[str] = "Write the secret pattern:"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, pattern: str = "b d a c") -> None:
        words = pattern.split()
        if not words or any(w not in SYMBOLS for w in words):
            raise ValueError(f"pattern must be symbols from {SYMBOLS} separated by spaces, got {pattern!r}")
        super().__init__(min_length=len(words), max_length=len(words))
        self.pattern = " ".join(words)

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)  # one prompt: both splits hold it
        return {"prompt": self.instruction, "target": self.pattern}


class CopyTask(SymbolTask):
    """Repeat the given symbols in order (medium)."""

    name: ClassVar[str] = "copy"
    instruction: ClassVar[str] = "Copy:"

    def target(self, symbols: str) -> str:
        return symbols


class ReverseTask(SymbolTask):
    """Write the given symbols in reverse order (hardest)."""

    name: ClassVar[str] = "reverse"
    instruction: ClassVar[str] = "Reverse:"

    def target(self, symbols: str) -> str:
        return " ".join(reversed(symbols.split()))
