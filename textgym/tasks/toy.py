"""The toy suite: Pattern, Copy and Reverse, symbol tasks of graded difficulty with a known optimum of 1.0.

They run on a tiny model built in seconds from the task's own vocabulary, so an RL agent can learn them
on a CPU in minutes; they are textgym's bsuite. Any other causal LM can be named instead: the prompts
are plain text. Each env class's docstring is its manual.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from textgym.envs import TextEnv
from textgym.rewards import sequence_match
from textgym.task import TINY, Example, Task, check_test_fraction

SYMBOLS = ("a", "b", "c", "d", "e", "f", "g", "h")
# Ends every Copy and Reverse prompt. Without it the tokens cannot say where the prompt stops: "Copy: a b"
# with "a" written reads exactly like the prompt "Copy: a b a", and no policy could score the optimum.
ANSWER_MARKER = "="


class SymbolTask(Task):
    """Shared machinery of the toy tasks: symbol strings, a hash-based split and the tiny model."""

    default_model: ClassVar[str] = TINY  # built from the task's vocabulary (corpus)
    prompt_budget: ClassVar[int] = 64  # room for a chat template's system prompt when a chat model is named
    default_kl_coef: ClassVar[float] = 0.0  # a randomly initialised reference is no prior worth staying near
    optimal_score: ClassVar[float] = 1.0
    instruction: ClassVar[str]

    def __init__(self, min_length: int = 2, max_length: int = 4, test_fraction: float = 0.2) -> None:
        if not 1 <= min_length <= max_length:
            raise ValueError(f"expected 1 <= min_length <= max_length, got {min_length} and {max_length}")
        self.min_length, self.max_length = min_length, max_length
        self.test_fraction = check_test_fraction(test_fraction)
        self.generation_budget = max_length + 2  # room for the answer, its EOS and one spare token

    def prompt(self, symbols: str) -> str:
        """The prompt that shows ``symbols`` (Pattern's one prompt shows none)."""
        return f"{self.instruction} {symbols} {ANSWER_MARKER}"

    def target(self, symbols: str) -> str:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        while True:
            length = int(rng.integers(self.min_length, self.max_length + 1))
            symbols = " ".join(SYMBOLS[int(i)] for i in rng.integers(0, len(SYMBOLS), size=length))
            if self.split_of(symbols) == split:
                return self._example(symbols)

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        return sequence_match(prompts, completions, **columns)

    def demonstration(self, example: Example) -> str:
        return example["target"]

    def examples(self, split: str) -> list[Example]:
        """Every string of ``split``, shortest first (``sample`` draws each length with equal chance; an
        epoch through these weighs each string the same, so long strings dominate)."""
        self.check_split(split)
        if len(SYMBOLS) ** self.max_length > 10**6:
            raise NotImplementedError(
                f"max_length={self.max_length} makes {len(SYMBOLS)}^{self.max_length} strings: too many to "
                f"go through in epochs (use prompt_order='random')"
            )
        strings = (
            " ".join(chars)
            for length in range(self.min_length, self.max_length + 1)
            for chars in itertools.product(SYMBOLS, repeat=length)
        )
        return [self._example(s) for s in strings if self.split_of(s) == split]

    def _example(self, symbols: str) -> Example:
        return {"prompt": self.prompt(symbols), "target": self.target(symbols)}

    def corpus(self) -> list[str]:
        """Lines covering every word the task can show or expect, for the tiny model's tokenizer."""
        rng = np.random.default_rng(0)
        examples = [self.sample(rng, split) for split in self.splits for _ in range(50)]
        return [" ".join(SYMBOLS)] + [f"{ex['prompt']} {ex['target']}" for ex in examples]


class PatternTask(SymbolTask):
    """Write one fixed secret pattern, whatever the prompt says: a bandit over sequences (easiest)."""

    name: ClassVar[str] = "pattern"
    description: ClassVar[str] = "Write a fixed secret pattern of symbols (a bandit over sequences)"
    instruction: ClassVar[str] = "Write the secret pattern:"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, pattern: str = "b d a c") -> None:
        words = pattern.split()
        if not words or any(w not in SYMBOLS for w in words):
            raise ValueError(f"pattern must be symbols from {SYMBOLS} separated by spaces, got {pattern!r}")
        super().__init__(min_length=len(words), max_length=len(words))
        self.pattern = " ".join(words)

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        return self.examples(split)[0]

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)  # one prompt: both splits hold it
        return [{"prompt": self.instruction, "target": self.pattern}]


class CopyTask(SymbolTask):
    """Repeat the given symbols in order (medium)."""

    name: ClassVar[str] = "copy"
    description: ClassVar[str] = "Copy a string of 2-4 symbols"
    instruction: ClassVar[str] = "Copy:"

    def target(self, symbols: str) -> str:
        return symbols


class ReverseTask(SymbolTask):
    """Write the given symbols in reverse order (hardest)."""

    name: ClassVar[str] = "reverse"
    description: ClassVar[str] = "Write a string of 2-4 symbols in reverse order"
    instruction: ClassVar[str] = "Reverse:"

    def target(self, symbols: str) -> str:
        return " ".join(reversed(symbols.split()))


_COMMON = """
    ## Observation and Action Spaces

    As :class:`textgym.envs.TextEnv`: ``input_ids`` and ``attention_mask`` of length
    ``64 + generation_budget`` (int64, prompt left-padded into the first 64 columns) and ``Discrete(V)``
    with ``V`` the model's logits dimension (for the default tiny model 14 for Copy, 14 for Reverse
    and 16 for Pattern: its words plus 4 special tokens).

    ## Rewards

    ``score = matches / max(len(target), len(completion))`` over whitespace-separated words
    (:func:`textgym.rewards.sequence_match`), paid on the final step; only the exact target scores the
    optimum, 1.0. KL shaping is off by default (``kl_coef=0``): the default model is randomly initialised,
    so its reference is no prior worth keeping. Pass ``kl_coef`` to turn it on.

    ## Episode End

    EOS, or ``generation_budget = max_length + 2`` tokens (room for the answer and its EOS), reported as
    ``terminated``.

    ## Model

    By default a tiny Llama (2 layers, width 64) with a SentencePiece word tokenizer trained on the
    task's own vocabulary, built locally in seconds with fixed seeds. ``model="smollm2"`` (or any causal
    LM) runs the same task through the model's chat template.
"""


class PatternEnv(TextEnv):
    __doc__ = (
        """Write a fixed secret pattern of symbols, whatever the prompt (level 1 of 3).

    ## Description

    The prompt is always ``"Write the secret pattern:"`` and the target is the ``pattern`` argument
    (default ``"b d a c"``). Nothing in the prompt reveals it: the agent must find it by exploration, a
    bandit over token sequences. It tells whether an algorithm learns at all.
    """
        + _COMMON
        + """
    ## Arguments

    ``pattern``: the target, symbols ``a``-``h`` separated by spaces. Every :class:`TextEnv` argument.
    Both splits hold the one prompt.

    ```python
    env = gym.make("textgym/Pattern-v0", pattern="a a b")
    ```

    ## Version History

    - v0: Initial version.
    """
    )
    task_class: ClassVar[type[Task]] = PatternTask


class CopyEnv(TextEnv):
    __doc__ = (
        """Copy a string of 2-4 symbols (level 2 of 3).

    ## Description

    The prompt is ``"Copy: c a f ="`` for random symbols from ``a``-``h``; the target is ``"c a f"``. The
    agent must attend to the prompt and stop after the last symbol.
    """
        + _COMMON
        + """
    ## Arguments

    ``min_length``, ``max_length`` (2 and 4): the string length range; ``test_fraction`` (0.2): share of
    strings in the held-out split, chosen by a content hash so it is fixed everywhere. Every
    :class:`TextEnv` argument.

    ```python
    env = gym.make("textgym/Copy-v1", max_length=6, split="test")
    ```

    ## Version History

    - v1: The prompt ends with ``" ="``. v0's did not, so its tokens could not say where the prompt
      stopped (``"Copy: a b"`` with ``a`` written read exactly like the prompt ``"Copy: a b a"``): no
      policy could score its optimum, and agents stalled at 0.3-0.4.
    - v0: Initial version.
    """
    )
    task_class: ClassVar[type[Task]] = CopyTask


class ReverseEnv(TextEnv):
    __doc__ = (
        """Write a string of 2-4 symbols in reverse order (level 3 of 3).

    ## Description

    The prompt is ``"Reverse: c a f ="``; the target is ``"f a c"``. The first token to write depends on
    the last prompt symbol, the next on the one before: harder than copying.
    """
        + _COMMON
        + """
    ## Arguments

    ``min_length``, ``max_length`` (2 and 4), ``test_fraction`` (0.2), as in ``Copy-v1``. Every
    :class:`TextEnv` argument.

    ```python
    env = gym.make("textgym/Reverse-v1", kl_coef=0.02)
    ```

    ## Version History

    - v1: The prompt ends with ``" ="``. v0's did not, so its tokens could not say where the prompt
      stopped (``"Reverse: a b"`` with ``b`` written read exactly like the prompt ``"Reverse: a b b"``): no
      policy could score its optimum, and agents stalled at 0.3-0.4.
    - v0: Initial version.
    """
    )
    task_class: ClassVar[type[Task]] = ReverseTask
