"""Verifiable arithmetic answers: 1.0 when the number after the completion's last ``Answer:`` marker equals
the example's ``answer``, with an optional small bonus for a well-formatted wrong answer.
:class:`textgym.tasks.ArithmeticTask` uses it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import numpy as np

# The marker: the word "answer" (any case, optionally in markdown bold) and a colon, then the number.
# Thousands separators are read only in groups of three ("1,200"), so "Answer: 12, since..." reads 12.
_ANSWER = re.compile(
    r"\banswer\b\s*\**\s*:\s*\**\s*\$?\s*(?P<number>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\d,]*\d)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\s*-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*")


def parse_answer(completion: str) -> Fraction | None:
    """The number given after the last ``Answer:`` marker of ``completion``, or None if there is none.

    The marker is the word "answer" in any case followed by a colon, optionally wrapped in markdown bold
    (``**Answer:** 12``); a ``$`` before the number is skipped. The number may carry a minus sign,
    thousands separators in groups of three (``1,200``) and a decimal part (``12.0``); trailing text such as
    a full stop or a unit is ignored. A bare number with no marker is not an answer.

    Returns:
        The value as an exact :class:`~fractions.Fraction` (so ``12.0`` equals 12 and ``12.5`` equals no
        integer), or None when no marker is followed by a number.
    """
    matches = list(_ANSWER.finditer(completion))
    if not matches:
        return None
    return Fraction(matches[-1].group("number").replace(",", ""))


def _expected(answer: Any) -> Fraction:
    """The reference answer of a column value: an int, or a string such as ``"1,200"``."""
    if isinstance(answer, str):
        if not _NUMBER.fullmatch(answer):
            raise ValueError(f"answer column must hold integers or numeric strings, got {answer!r}")
        return Fraction(answer.strip().replace(",", ""))
    if isinstance(answer, bool) or not isinstance(answer, int | np.integer):
        raise ValueError(f"answer column must hold integers or numeric strings, got {answer!r}")
    return Fraction(int(answer))


class ArithmeticReward:
    """The arithmetic reward with an optional bonus for a well-formatted but wrong answer.

    Each completion scores:

    - ``1.0`` when the number after its last ``Answer:`` marker equals the answer (see :func:`parse_answer`);
    - ``format_reward`` when a marker with a number is there but the number is wrong;
    - ``0.0`` otherwise, including a correct number written without the marker.

    A correct answer thus scores exactly 1.0 whatever ``format_reward`` is, and the optimum stays 1.0.

    Args:
        format_reward: The bonus for a well-formatted wrong answer, in ``[0, 1)``.
    """

    def __init__(self, format_reward: float = 0.0) -> None:
        if not 0.0 <= format_reward < 1.0:
            raise ValueError(
                f"format_reward must be in [0, 1) so a correct answer stays best, got {format_reward}"
            )
        self.format_reward = float(format_reward)
        self.name = f"arithmetic_reward(format_reward={self.format_reward:g})"

    def __call__(
        self, prompts: list[str], completions: list[str], answer: list[Any], **kwargs: Any
    ) -> list[float]:
        scores = []
        for completion, expected in zip(completions, answer, strict=True):
            given = parse_answer(completion)
            if given is None:
                scores.append(0.0)
            else:
                scores.append(1.0 if given == _expected(expected) else self.format_reward)
        return scores

    def __repr__(self) -> str:
        return f"ArithmeticReward(format_reward={self.format_reward!r})"


def arithmetic_reward(
    prompts: list[str], completions: list[str], answer: list[Any], **kwargs: Any
) -> list[float]:
    """1.0 when the number after the completion's last ``Answer:`` marker equals ``answer``, else 0.0.

    ``answer`` holds ints or numeric strings (``"1,200"``). A correct number without the marker scores 0.0.
    :class:`ArithmeticReward` adds an optional bonus for well-formatted wrong answers.
    """
    return ArithmeticReward()(prompts, completions, answer)
