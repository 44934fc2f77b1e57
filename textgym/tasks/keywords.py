"""Keywords: write one sentence that uses every concept of a set (constrained generation, CommonGen-style).

Each example shows 3 to 5 common English concepts (nouns and verbs in their base form, such as
``dog frisbee catch throw``) and asks for one sentence that uses all of them. The reward is the share of
concepts the first sentence uses, in any inflected form, less a small penalty for repeated words.
Word forms come from ``lemminflect``, whose lemma and inflection tables ship inside its wheel, so
scoring needs no data download.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, ClassVar

import numpy as np

from textgym.envs import TextEnv
from textgym.rewards.keywords import keyword_coverage
from textgym.task import Example, Task, check_test_fraction

__all__ = ["KeywordsEnv", "KeywordsTask", "load_concept_sets"]


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
    description: ClassVar[str] = "One sentence using 3-5 given concepts (CommonGen-style)"
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
        self.test_fraction = check_test_fraction(test_fraction)
        self.sets: dict[str, list[tuple[str, ...]]] = {split: [] for split in self.splits}
        for concepts in load_concept_sets():
            self.sets[self.split_of(" ".join(concepts))].append(concepts)

    def prompt(self, concepts: tuple[str, ...] | list[str]) -> str:
        return self.template.format(", ".join(concepts))

    def sample(self, rng: np.random.Generator, split: str) -> Example:
        self.check_split(split)
        pool = self.sets[split]
        return self._example(pool[int(rng.integers(len(pool)))])

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)
        return [self._example(concepts) for concepts in self.sets[split]]

    def _example(self, concepts: tuple[str, ...]) -> Example:
        return {"prompt": self.prompt(concepts), "concepts": list(concepts)}

    def reward(self, prompts: list[str], completions: list[str], **columns: list[Any]) -> list[float]:
        return keyword_coverage(prompts, completions, **columns)


class KeywordsEnv(TextEnv):
    """Write one sentence that uses all of 3 to 5 given concepts (constrained generation).

    ## Description

    In the spirit of CommonGen: the prompt lists a set of everyday concepts, nouns and verbs in their
    base form, and asks for one sentence that uses them all::

        Write one sentence that uses all of these words: dog, frisbee, catch, throw.

    An optimal answer is a fluent sentence such as "The boy throws a frisbee and his dog catches it.":
    every concept appears, in any inflected form, and no word repeats. The 465 concept sets (3, 4 or 5
    words; 212, 139 and 114 of them) were written for textgym and span kitchens, farms, sports, weather,
    schools, jobs, travel, animals and family life (``textgym/tasks/data/concept_sets.txt``).
    The example column ``concepts`` (a list of words, in the order shown) reaches the reward.

    ## Observation and Action Spaces

    As :class:`textgym.envs.TextEnv`: ``input_ids`` and ``attention_mask`` of length
    ``prompt_budget + generation_budget = 64 + 40 = 104`` (int64, the prompt left-padded into the first
    64 columns), and ``Discrete(V)`` with ``V`` the model's logits dimension (49152 for the default
    SmolLM2-135M-Instruct). The prompt goes through the model's chat template as the user message;
    SmolLM2's template adds 30 tokens (its default system prompt and role markers) to the instruction's
    16-22, so 64 leaves room for long concept words.

    ## Rewards

    Paid on the final step (:func:`textgym.rewards.keyword_coverage`). Only the completion's
    first sentence counts: the text up to the first ``.``, ``!`` or ``?`` followed by whitespace or the
    end, or up to the first line break. With ``n`` concepts, ``k`` of them used there and ``r`` extra
    occurrences of content words (each occurrence after a word's first; forms of one concept are one
    word)::

        score = max(0, factor * k / n - min(0.5, 0.1 * r))

    ``factor`` is 0.5 for a bare list (a sentence of nothing but concept words joined by commas, "and"
    or "or", such as "dog, frisbee, catch, throw."), else 1. Concepts match on word forms, regular and
    irregular ("threw" for throw, "knives" for knife, "children" for child), looked up with
    ``lemminflect``. Content words are all but function words (articles, pronouns, prepositions,
    conjunctions, auxiliaries, contractions), which repeat freely. A sentence using every concept with
    no repeated content word scores the optimum, 1.0; a preamble such as "Sure!" scores 0, since it is
    the first sentence. Every step also pays the KL shaping of :class:`~textgym.envs.TextEnv`, with
    ``kl_coef = 0.05`` by default, which keeps the policy's language fluent.

    ## Episode End

    EOS (``<|im_end|>`` for SmolLM2), or ``generation_budget = 40`` tokens, reported as ``terminated``.
    One sentence with 3-5 concepts takes 12-25 tokens.

    ## Splits

    ``"train"`` and ``"test"``: a set is in the test split when the CRC-32 of its line falls in the
    lowest ``test_fraction`` of the range. The split is fixed across runs and machines, disjoint, and
    holds 97 of the 465 sets (21%) at the default ``test_fraction=0.2``. Sets are drawn uniformly from
    the split with the env's ``np_random``.

    ## Arguments

    ``test_fraction`` (0.2): share of sets in the held-out split. Every :class:`TextEnv` argument.

    ```python
    import gymnasium as gym
    import textgym

    env = gym.make("textgym/Keywords-v0", split="test", kl_coef=0.02)
    obs, info = env.reset(seed=0)
    print(info["prompt"])  # Write one sentence that uses all of these words: ...
    ```

    ## Version History

    - v0: Initial version.
    """

    task_class: ClassVar[type[Task]] = KeywordsTask
