"""Sentiment: continue the opening of a movie review so that it reads positively (or negatively).

The offline analogue of the IMDB task of RL4LMs and TRL: the prompt shows the opening of a movie review
(from ``data/review_openings.txt``, written for textgym) and the reward is the VADER compound score of
the continuation alone, in ``[-1, 1]``. VADER is a lexicon-and-rules scorer (the ``vaderSentiment``
package, its lexicon inside the wheel), so scoring needs no model download and costs microseconds.
"""

from __future__ import annotations

import functools
import zlib
from importlib import resources
from typing import Any, ClassVar, Literal

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from textgym.tasks.task import Example, Task

__all__ = [
    "INSTRUCTION",
    "POLARITIES",
    "SentimentTask",
    "load_openings",
    "negative_sentiment",
    "split_of",
    "vader_sentiment",
]

Polarity = Literal["positive", "negative"]
POLARITIES: tuple[str, ...] = ("positive", "negative")

# The opening quote is left open: SmolLM2-135M-Instruct then tends to write on from the opening's last
# word. Of the formats tried (a bare "Continue this movie review:" with the opening on its own line,
# "Write the next sentence of...", a closed quote, an explicit "do not repeat it"), this one had the
# model restate the opening least often.
INSTRUCTION = 'Continue this movie review: "'

TEST_FRACTION = 0.2  # share of openings held out, chosen by a content hash (75 of the 361 shipped)


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


@functools.cache
def load_openings() -> tuple[str, ...]:
    """The shipped review openings, one per non-blank line of ``data/review_openings.txt``."""
    text = resources.files("textgym.tasks").joinpath("data/review_openings.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def split_of(opening: str) -> str:
    """``"test"`` for about 20% of openings, chosen by a CRC32 of the text, else ``"train"``.

    A content hash rather than line positions: the split of an opening stays put when lines are added,
    removed or reordered.
    """
    return "test" if zlib.crc32(opening.encode("utf-8")) % 1000 < TEST_FRACTION * 1000 else "train"


class SentimentTask(Task):
    """Continue a movie-review opening with positive (or, with ``target="negative"``, negative) sentiment.

    An example is ``{"prompt": 'Continue this movie review: "<opening>', "opening": <opening>,
    "polarity": target}``; the reward is :func:`vader_sentiment`, which reads ``polarity``.

    Args:
        target: ``"positive"`` (default) rewards positive continuations, ``"negative"`` negative ones.
    """

    name: ClassVar[str] = "sentiment"
    # Under SmolLM2 the chat template (its system prompt and role markers) takes 30 tokens, the
    # instruction 6 and an opening 8 to 40: 77 at most (69 for the longest shipped opening). 96 leaves
    # room for longer openings of other tokenizers.
    prompt_budget: ClassVar[int] = 96
    # Two short sentences: enough for VADER to judge, and a third of RL4LMs' 48 tokens less CPU time.
    generation_budget: ClassVar[int] = 32
    # TRL's default. It charges for drifting from the reference model's English toward strings of praise
    # words ("great great love"), which VADER also scores near 1.
    default_kl_coef: ClassVar[float] = 0.05
    optimal_score: ClassVar[float] = 1.0  # the VADER compound maximum

    def __init__(self, target: Polarity = "positive") -> None:
        if target not in POLARITIES:
            raise ValueError(f"target must be one of {POLARITIES}, got {target!r}")
        self.target = target
        openings = load_openings()
        self.openings: dict[str, tuple[str, ...]] = {
            split: tuple(o for o in openings if split_of(o) == split) for split in self.splits
        }

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        pool = self.openings[split]
        opening = pool[int(rng.integers(len(pool)))]
        return {"prompt": f"{INSTRUCTION}{opening}", "opening": opening, "polarity": self.target}

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        # Called without the example columns (as a bare reward), the task's own target still holds.
        columns.setdefault("polarity", [self.target] * len(completions))
        return vader_sentiment(prompts, completions, **columns)
