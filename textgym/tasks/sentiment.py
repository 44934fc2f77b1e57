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
from typing import Any, ClassVar

import numpy as np

from textgym.rewards.sentiment import POLARITIES, Polarity, vader_sentiment
from textgym.tasks.task import Example, Task

__all__ = ["INSTRUCTION", "SentimentTask", "load_openings", "split_of"]

# The opening quote is left open: SmolLM2-135M-Instruct then tends to write on from the opening's last
# word. Of the formats tried (a bare "Continue this movie review:" with the opening on its own line,
# "Write the next sentence of...", a closed quote, an explicit "do not repeat it"), this one had the
# model restate the opening least often.
INSTRUCTION = 'Continue this movie review: "'

TEST_FRACTION = 0.2  # share of openings held out, chosen by a content hash (75 of the 361 shipped)


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
