"""Sentiment: continue the opening of a movie review so that it reads positively (or negatively).

The offline analogue of the IMDB task of RL4LMs and TRL: the prompt shows the opening of a movie review
(from ``data/review_openings.txt``, written for textgym) and the reward is the VADER compound score of
the continuation alone, in ``[-1, 1]``. VADER is a lexicon-and-rules scorer (the ``vaderSentiment``
package, its lexicon inside the wheel), so scoring needs no model download and costs microseconds.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from textgym.envs import TextEnv
from textgym.rewards.sentiment import POLARITIES, Polarity, vader_sentiment
from textgym.task import Example, Task

__all__ = ["INSTRUCTION", "SentimentEnv", "SentimentTask", "load_openings"]

# The opening quote is left open: SmolLM2-135M-Instruct then tends to write on from the opening's last
# word. Of the formats tried (a bare "Continue this movie review:" with the opening on its own line,
# "Write the next sentence of...", a closed quote, an explicit "do not repeat it"), this one had the
# model restate the opening least often.
INSTRUCTION = 'Continue this movie review: "'


@functools.cache
def load_openings() -> tuple[str, ...]:
    """The shipped review openings, one per non-blank line of ``data/review_openings.txt``."""
    text = resources.files("textgym.tasks").joinpath("data/review_openings.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


class SentimentTask(Task):
    """Continue a movie-review opening with positive (or, with ``target="negative"``, negative) sentiment.

    An example is ``{"prompt": 'Continue this movie review: "<opening>', "opening": <opening>,
    "polarity": target}``; the reward is :func:`vader_sentiment`, which reads ``polarity``.

    Args:
        target: ``"positive"`` (default) rewards positive continuations, ``"negative"`` negative ones.
    """

    name: ClassVar[str] = "sentiment"
    description: ClassVar[str] = "Continue a movie review positively (or negatively), scored by VADER"
    # Under SmolLM2 the chat template (its system prompt and role markers) takes 30 tokens, the
    # instruction 6 and an opening 8 to 40: 77 at most (69 for the longest shipped opening). 96 leaves
    # room for longer openings of other tokenizers.
    prompt_budget: ClassVar[int] = 96
    # Two short sentences: enough for VADER to judge, and a third of RL4LMs' 48 tokens less CPU time.
    generation_budget: ClassVar[int] = 32
    # TRL's default. It charges for drifting from the reference model's English toward strings of praise
    # words ("great great love"), which VADER also scores near 1.
    default_kl_coef: ClassVar[float] = 0.05
    score_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)  # the VADER compound's range
    optimal_score: ClassVar[float] = 1.0
    test_fraction: float = 0.2  # share of openings held out by split_of (75 of the 361 shipped)

    def __init__(self, target: Polarity = "positive") -> None:
        if target not in POLARITIES:
            raise ValueError(f"target must be one of {POLARITIES}, got {target!r}")
        self.target = target
        openings = load_openings()
        self.openings: dict[str, tuple[str, ...]] = {
            split: tuple(o for o in openings if self.split_of(o) == split) for split in self.splits
        }

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        pool = self.openings[split]
        return self._example(pool[int(rng.integers(len(pool)))])

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)
        return [self._example(opening) for opening in self.openings[split]]

    def _example(self, opening: str) -> Example:
        return {"prompt": f"{INSTRUCTION}{opening}", "opening": opening, "polarity": self.target}

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        # Called without the example columns (as a bare reward), the task's own target still holds.
        columns.setdefault("polarity", [self.target] * len(completions))
        return vader_sentiment(prompts, completions, **columns)


class SentimentEnv(TextEnv):
    """Continue the opening of a movie review so that it reads positively (or negatively).

    ## Description

    The classic RLHF demo, an offline analogue of the IMDB task of RL4LMs and TRL: the model sees the
    opening of a movie review and writes its continuation, which is rewarded for its sentiment. The
    prompt is the instruction followed by the opening, its quote left open so that the model writes on
    from the opening's last word::

        Continue this movie review: "The lead actress carries the whole film on her shoulders, and

    The 361 openings (8 to 40 SmolLM2 tokens each) were written for textgym
    (``textgym/tasks/data/review_openings.txt``). They cover genres (horror, comedy, westerns, science
    fiction, musicals, documentaries, animation), performances, plots, scores, cinematography, pacing,
    sequels and remakes, and start in every tone: clearly positive, clearly negative, mixed, or cut off
    mid-sentence so that the continuation decides the polarity. Against a positive target, a negative
    opening is the hard case: the policy must turn the review around. The example columns ``opening``
    (the bare opening) and ``polarity`` (the target) reach the reward.

    ## Observation and Action Spaces

    As :class:`textgym.envs.TextEnv`: ``input_ids`` and ``attention_mask`` of length
    ``prompt_budget + generation_budget = 96 + 32 = 128`` (int64, the prompt left-padded into the first
    96 columns), and ``Discrete(V)`` with ``V`` the model's logits dimension (49152 for the default
    SmolLM2-135M-Instruct). The prompt goes through the model's chat template as the user message:
    SmolLM2's adds 30 tokens (its default system prompt and role markers) to the instruction's 6 and the
    opening's 8-40, at most 77 tokens in all (69 for the longest shipped opening).

    ## Rewards

    Paid on the final step (:func:`textgym.rewards.vader_sentiment`): the VADER compound score
    (``vaderSentiment``, a lexicon-and-rules scorer that needs no download) of the continuation alone,
    never of the prompt, in ``[-1, 1]``. With ``target="negative"`` the score is negated, so higher is
    always better. An empty continuation scores 0.0. The optimum is 1.0, approached but not reached in
    practice (the compound saturates): two emphatically positive sentences such as "turned out to be
    wonderful. A brilliant, funny and beautiful film that I loved." score about 0.96. Every step also
    pays the KL shaping of :class:`~textgym.envs.TextEnv`, with ``kl_coef = 0.05`` by default: without
    it, nothing stops the policy from drifting to strings of praise words ("great great love best") that
    VADER also scores near 1.

    ## Episode End

    EOS (``<|im_end|>`` for SmolLM2), or ``generation_budget = 32`` tokens (one or two sentences), reported
    as ``terminated``. RL4LMs used 48-token continuations; 32 keeps CPU rollouts cheaper, and
    ``generation_budget=48`` restores theirs.

    ## Splits

    ``"train"`` and ``"test"``: an opening is in the test split when the CRC-32 of its text falls in the
    lowest 20% of the range. The split is fixed across runs and machines (and stays put when openings are
    added), disjoint, and holds 75 of the 361 openings (21%); the train split holds the other 286.
    Openings are drawn uniformly from the split with the env's ``np_random``.

    ## Arguments

    ``target`` (``"positive"``): ``"positive"`` rewards positive continuations, ``"negative"`` negative
    ones; the prompt is the same either way, as in RL4LMs. Every :class:`TextEnv` argument.

    ```python
    import gymnasium as gym
    import textgym

    env = gym.make("textgym/Sentiment-v0", target="negative", split="test", generation_budget=48)
    obs, info = env.reset(seed=0)
    print(info["prompt"])  # Continue this movie review: "...
    ```

    ## Version History

    - v0: Initial version.
    """

    task_class: ClassVar[type[Task]] = SentimentTask
