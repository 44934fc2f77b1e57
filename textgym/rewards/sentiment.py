"""VADER sentiment rewards: the compound score of the completion alone, in ``[-1, 1]``.

VADER is a lexicon-and-rules scorer (the ``vaderSentiment`` package, its lexicon inside the wheel), so
scoring needs no model download and costs microseconds. :class:`textgym.tasks.SentimentTask` uses it.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

Polarity = Literal["positive", "negative"]
POLARITIES: tuple[str, ...] = ("positive", "negative")


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Building one loads the ~7,500-entry lexicon from disk: do it once, on first use.
    return SentimentIntensityAnalyzer()


def _compound(text: str) -> float:
    return float(_analyzer().polarity_scores(text)["compound"]) if text.strip() else 0.0


def vader_sentiment(
    prompts: list[str], completions: list[str], polarity: list[str] | None = None, **kwargs: Any
) -> list[float]:
    """VADER compound score of each completion, in ``[-1, 1]``; positive text scores high.

    Only the completion is scored, never the prompt. An empty (or all-whitespace) completion scores 0.0.

    Args:
        prompts: The prompts (unused; part of the TRL signature).
        completions: The generated continuations.
        polarity: Optional per-item target, ``"positive"`` or ``"negative"`` (the column
            :class:`SentimentTask` provides). Items whose target is ``"negative"`` score the negated
            compound, so that for every item higher is better.
        **kwargs: Other dataset columns, ignored.

    Returns:
        One score per completion.
    """
    scores = [_compound(completion) for completion in completions]
    if polarity is None:
        return scores
    if len(polarity) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(polarity)} polarity values")
    for target in polarity:
        if target not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {target!r}")
    return [-s if target == "negative" else s for s, target in zip(scores, polarity, strict=True)]


def negative_sentiment(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """Negated VADER compound score of each completion: negative text scores high (empty scores 0.0)."""
    return [-_compound(completion) for completion in completions]
