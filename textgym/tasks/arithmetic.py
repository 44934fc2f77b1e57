"""Arithmetic word problems with verifiable integer answers: the kind of reward behind RL on reasoning.

A problem is a short story about one person's collection of objects, told as a start amount followed by
one to three operations (buy more, give some away, grow several times over, split into equal groups),
then a question about the final amount. Everything is drawn from the env's ``np_random``; the stories'
templates, names and objects were written for textgym.

The prompt asks for the final answer as ``Answer: <number>``; :func:`arithmetic_reward` pays 1.0 when
the number after the completion's last such marker equals the answer, and nothing for a bare number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from textgym.envs import TextEnv
from textgym.rewards.arithmetic import ArithmeticReward
from textgym.task import Example, Task, check_test_fraction

__all__ = ["ArithmeticEnv", "ArithmeticTask"]

# The stories. A sentence is written in lower case and capitalised once its connective is added;
# {s}/{o}/{p} are the person's subject, object and possessive pronouns, {x} the objects' plural noun.
_NAMES = (
    ("Mia", "she"), ("Leo", "he"), ("Ava", "she"), ("Omar", "he"), ("Zoe", "she"), ("Ravi", "he"),
    ("Lena", "she"), ("Kenji", "he"), ("Amara", "she"), ("Diego", "he"), ("Priya", "she"), ("Felix", "he"),
    ("Hana", "she"), ("Tom", "he"), ("Sofia", "she"), ("Yusuf", "he"),
)  # fmt: skip
_OBJECTS = (
    "apples", "marbles", "stickers", "pencils", "coins", "shells",
    "stamps", "cookies", "books", "cards", "buttons", "beads",
)  # fmt: skip
_PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "him", "his")}

_STARTS = (
    "{name} has {a} {x}.",
    "{name} starts with {a} {x}.",
    "{name} keeps {a} {x} in a box.",
)
_STEPS: dict[str, tuple[str, ...]] = {
    "+": (
        "{s} buys {n} more.",
        "{s} finds {n} more {x}.",
        "a friend gives {o} {n} more {x}.",
        "{s} gets {n} more {x} as a gift.",
    ),
    "-": (
        "{s} gives {n} {x} to a friend.",
        "{s} loses {n} of them.",
        "{s} sells {n} {x}.",
        "{s} uses {n} of {p} {x}.",
    ),
    "*": (
        "{s} collects more until {s} has {k} times as many as before.",
        "the number of {x} {s} has is multiplied by {k}.",
        "{p} pile of {x} grows to {k} times its size.",
    ),
    "/": (
        "{s} splits {p} {x} into {k} equal groups and keeps one group.",
        "{s} shares {p} {x} equally among {k} bags and keeps one bag.",
    ),
}
_CONNECTIVES = ("then ", "after that, ", "next, ")  # one per step after the first, none repeated
_QUESTIONS = (
    "How many {x} does {s} have now?",
    "How many {x} does {name} have at the end?",
)
INSTRUCTION = 'End your reply with "Answer: " followed by the number.'


@dataclass(frozen=True)
class Level:
    """How one difficulty level draws its problems (all bounds inclusive)."""

    num_ops: int
    ops: tuple[str, ...]  # operations drawn uniformly, independently for each step
    max_number: int  # start amount and added or subtracted amounts lie in [1, max_number]
    max_factor: int  # multipliers and divisors lie in [2, max_factor]
    max_multiplications: int  # problems with more "*" steps are redrawn
    min_divisions: int  # problems with fewer "/" steps are redrawn
    max_answer: int  # the largest answer the bounds allow
    prompt_budget: int  # tokens, the SmolLM2 chat template's 30 included
    generation_budget: int  # tokens: the answer line, EOS and a line of working per operation


# Budgets: the longest of 6,000 prompts per level measured 79, 95 and 115 tokens with the SmolLM2 chat
# template; SmolLM2 greedily writes about 25 tokens of working per operation before "Answer: <n>".
LEVELS: dict[int, Level] = {
    1: Level(
        num_ops=1, ops=("+", "-"), max_number=19, max_factor=0, max_multiplications=0, min_divisions=0,
        max_answer=19 + 19, prompt_budget=96, generation_budget=48,
    ),
    2: Level(
        num_ops=2, ops=("+", "-", "*"), max_number=99, max_factor=5, max_multiplications=1, min_divisions=0,
        max_answer=(99 + 99) * 5, prompt_budget=112, generation_budget=80,
    ),
    # Level 3's largest answer halves an even start first: (98 / 2 + 99) * 5.
    3: Level(
        num_ops=3, ops=("+", "-", "*", "/"), max_number=99, max_factor=5, max_multiplications=1,
        min_divisions=1, max_answer=(98 // 2 + 99) * 5, prompt_budget=128, generation_budget=112,
    ),
}  # fmt: skip


def evaluate(start: int, steps: list[tuple[str, int]]) -> list[Fraction]:
    """The running amounts ``[start, after step 1, ...]`` of a problem, exactly."""
    amounts = [Fraction(start)]
    for op, value in steps:
        x = amounts[-1]
        amounts.append({"+": x + value, "-": x - value, "*": x * value, "/": x / value}[op])
    return amounts


class ArithmeticTask(Task):
    """Short arithmetic word problems with integer answers, graded into three difficulty levels.

    Difficulty levels (every bound inclusive; operations are applied in story order, left to right):

    - **1**: a start amount and one addition or subtraction, both numbers in 1-19. Answers 1-38.
    - **2**: two operations, each an addition or subtraction of a number in 1-99 or a multiplication by
      2-5 (at most one multiplication); start amount in 1-99. Answers 1-990.
    - **3**: three operations, each an addition, subtraction, multiplication (by 2-5, at most one) or exact
      division (by 2-5, at least one); start amount and added or subtracted numbers in 1-99.
      Answers 1-740.

    Every running amount, the answer included, is a positive integer: problems that would go to zero,
    below it, or through an inexact division are redrawn. Each example carries the columns ``answer``
    (int), ``expression`` (the computation in Python syntax, e.g. ``"(7 + 5) * 3"``) and ``difficulty``.

    The prompt is the story followed by the instruction to end with ``Answer: <number>``, the format
    :class:`ArithmeticReward` reads. The split is fixed by a CRC32 hash of the expression: about
    ``test_fraction`` of all computations are held out, so a test problem never shares its numbers and
    operations with a training problem, whatever names and objects tell it.

    Args:
        difficulty: 1, 2 or 3, as above.
        format_reward: Bonus in ``[0, 1)`` for a well-formatted wrong answer (see :class:`ArithmeticReward`);
            a correct answer always scores 1.0.
        test_fraction: Share of computations held out in the test split.
    """

    name: ClassVar[str] = "arithmetic"
    description: ClassVar[str] = "Word problems with a verifiable 'Answer: <n>' (difficulty=1..3)"
    default_kl_coef: ClassVar[float] = 0.05
    optimal_score: ClassVar[float] = 1.0

    def __init__(self, difficulty: int = 1, format_reward: float = 0.0, test_fraction: float = 0.2) -> None:
        if (
            isinstance(difficulty, bool)
            or not isinstance(difficulty, int | np.integer)
            or difficulty not in LEVELS
        ):
            raise ValueError(f"difficulty must be one of {sorted(LEVELS)}, got difficulty={difficulty!r}")
        self.difficulty = int(difficulty)
        self.level = LEVELS[self.difficulty]
        self.prompt_budget, self.generation_budget = self.level.prompt_budget, self.level.generation_budget
        self.test_fraction = check_test_fraction(test_fraction)
        self.reward_fn = ArithmeticReward(format_reward)

    def draw_computation(self, rng: np.random.Generator) -> tuple[int, list[tuple[str, int]]]:
        """A valid start amount and steps ``[(op, value), ...]`` of this level, drawn by rejection."""
        level = self.level
        while True:
            start = int(rng.integers(1, level.max_number + 1))
            steps = []
            for _ in range(level.num_ops):
                op = level.ops[int(rng.integers(len(level.ops)))]
                high = level.max_number if op in "+-" else level.max_factor
                low = 1 if op in "+-" else 2
                steps.append((op, int(rng.integers(low, high + 1))))
            ops = [op for op, _ in steps]
            if ops.count("*") > level.max_multiplications or ops.count("/") < level.min_divisions:
                continue
            if all(x.denominator == 1 and x >= 1 for x in evaluate(start, steps)):
                return start, steps

    @staticmethod
    def expression(start: int, steps: list[tuple[str, int]]) -> str:
        """The computation in Python syntax, parenthesised so it evaluates in story order."""
        text = str(start)
        for i, (op, value) in enumerate(steps):
            text = f"({text}) {op} {value}" if i else f"{text} {op} {value}"
        return text

    def story(self, rng: np.random.Generator, start: int, steps: list[tuple[str, int]]) -> str:
        """The word problem telling the computation, with a random person, object and phrasing."""
        name, pronoun = _NAMES[int(rng.integers(len(_NAMES)))]
        s, o, p = _PRONOUNS[pronoun]
        fill = {"name": name, "s": s, "o": o, "p": p, "x": _OBJECTS[int(rng.integers(len(_OBJECTS)))]}
        sentences = [_STARTS[int(rng.integers(len(_STARTS)))].format(a=start, **fill)]
        connectives = ["", *(_CONNECTIVES[int(i)] for i in rng.permutation(len(_CONNECTIVES)))]
        for (op, value), connective in zip(steps, connectives, strict=False):
            phrasing = _STEPS[op][int(rng.integers(len(_STEPS[op])))]
            sentence = connective + phrasing.format(n=value, k=value, **fill)
            sentences.append(sentence[0].upper() + sentence[1:])
        sentences.append(_QUESTIONS[int(rng.integers(len(_QUESTIONS)))].format(**fill))
        return " ".join(sentences)

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        while True:
            start, steps = self.draw_computation(rng)
            expression = self.expression(start, steps)
            if self.split_of(expression) == split:
                break
        answer = evaluate(start, steps)[-1]
        return {
            "prompt": f"{self.story(rng, start, steps)}\n{INSTRUCTION}",
            "answer": int(answer),
            "expression": expression,
            "difficulty": self.difficulty,
        }

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        return self.reward_fn(prompts, completions, **columns)

    def demonstration(self, example: Example) -> str:
        """The worked answer: one line per operation, then the answer line, e.g.
        ``"13 + 5 = 18\n18 * 2 = 36\nAnswer: 36"``."""
        start, *rest = re.findall(r"\d+|[-+*/]", example["expression"])
        steps = [(op, int(value)) for op, value in zip(rest[::2], rest[1::2], strict=True)]
        amounts = evaluate(int(start), steps)
        lines = [f"{amounts[i]} {op} {value} = {amounts[i + 1]}" for i, (op, value) in enumerate(steps)]
        return "\n".join([*lines, f"Answer: {example['answer']}"])


class ArithmeticEnv(TextEnv):
    """Solve a short arithmetic word problem and give the result as ``Answer: <number>``.

    ## Description

    A verifiable-answer task, the kind of reward behind reinforcement learning on reasoning. Each episode
    draws a story about one person's collection from ``np_random`` (names, objects and phrasings vary):
    a start amount, one to three operations, and a question about the final amount, e.g.

    ```text
    Leo starts with 16 books. A friend gives him 10 more books. How many books does he have now?
    End your reply with "Answer: " followed by the number.
    ```

    The completion may work the problem out first; only its last ``Answer: <number>`` counts.
    ``difficulty`` (bounds inclusive, operations applied in story order):

    | level | operations | numbers | answers |
    |---|---|---|---|
    | 1 | one ``+`` or ``-`` | start and amount 1-19 | 1-38 |
    | 2 | two of ``+``, ``-``, ``*`` (at most one ``*``) | start and amounts 1-99, factor 2-5 | 1-990 |
    | 3 | three of ``+``, ``-``, ``*``, ``/`` (at most one ``*``, at least one ``/``) | as level 2 | 1-740 |

    Every intermediate amount and every answer is a positive integer (divisions are exact); problems that
    would break this are redrawn. The examples carry the columns ``answer`` (int), ``expression``
    (e.g. ``"(42 - 3) + 13"``) and ``difficulty``, which reach the reward as keyword lists.

    ## Observation and Action Spaces

    As :class:`textgym.envs.TextEnv`: ``input_ids`` and ``attention_mask`` of length
    ``prompt_budget + generation_budget`` (int64, prompt left-padded into the first ``prompt_budget``
    columns) and ``Discrete(V)``, ``V = 49152`` for the default model.

    ## Rewards

    On the final step, the score of :class:`textgym.rewards.ArithmeticReward`:

    - ``1.0`` when the number after the completion's last ``Answer:`` marker equals the answer. The marker
      is the word "answer" in any case followed by a colon (markdown bold allowed: ``**Answer:** 12``);
      the number may have a decimal part equal to an integer (``12.0``), thousands separators in groups of
      three (``1,200``), and trailing text (``Answer: 12 apples.``);
    - ``format_reward`` (default 0.0) when the marker carries a wrong number;
    - ``0.0`` otherwise, including a correct number without the marker (``"She has 12."``) and
      ``"The answer is 12"``.

    So a correct answer scores exactly 1.0 whatever ``format_reward`` is, and the optimum is 1.0. Each
    step is also shaped by the KL divergence to the frozen default model, ``kl_coef=0.05`` by default.

    ## Episode End

    EOS, or the generation budget, reported as ``terminated``. Budgets per level, in tokens:

    | level | prompt_budget | generation_budget |
    |---|---|---|
    | 1 | 96 | 48 |
    | 2 | 112 | 80 |
    | 3 | 128 | 112 |

    The prompt budgets hold the longest prompts measured with SmolLM2's chat template (79, 95 and 115
    tokens, its default system prompt counting 30); the generation budgets leave SmolLM2 room for about one
    line of working per operation (it writes some 25 tokens each) plus the answer line.

    ## Model

    SmolLM2-135M-Instruct (``"smollm2"``), through its chat template: the prompt is the user message.
    Decoding greedily, it answered 11 of 64 level-1 problems correctly in the format (and formatted 19
    more wrong answers) and none of 32 at levels 2 or 3, which leave room to learn. Any causal LM can be
    named with ``model``.

    ## Arguments

    - ``difficulty``: 1 (default), 2 or 3; anything else raises a ``ValueError``.
    - ``format_reward``: bonus in ``[0, 1)`` for a well-formatted wrong answer (default 0.0).
    - ``test_fraction``: share of computations held out (default 0.2). The split is fixed by a CRC32 hash
      of ``expression``, so a ``split="test"`` problem never shares its numbers and operations with a
      training problem, whatever names or objects tell it.
    - Every :class:`TextEnv` argument (``prompt_budget`` and ``generation_budget`` override the table).

    ```python
    import gymnasium as gym
    import textgym

    env = gym.make("textgym/Arithmetic-v0", difficulty=2, format_reward=0.1)
    obs, info = env.reset(seed=0)
    print(info["prompt"])
    ```

    ## Version History

    - v0: Initial version.
    """

    task_class: ClassVar[type[Task]] = ArithmeticTask
