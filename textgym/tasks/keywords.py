"""Keywords: write one sentence that uses every concept of a set (constrained generation, CommonGen-style).

Each example shows 3 to 5 common English concepts (nouns and verbs in their base form, such as
``dog frisbee catch throw``) and asks for one sentence that uses all of them. The reward is the share of
concepts the first sentence uses, in any inflected form, less a small penalty for repeated words.
Word forms come from ``lemminflect``, whose lemma and inflection tables ship inside its wheel, so
scoring needs no data download.
"""

from __future__ import annotations

import functools
import re
import zlib
from importlib import resources
from typing import Any, ClassVar

import lemminflect
import numpy as np

from textgym.tasks.task import Example, Task

__all__ = [
    "LIST_FACTOR",
    "REPEAT_PENALTY",
    "REPEAT_PENALTY_CAP",
    "STOPWORDS",
    "KeywordsTask",
    "coverage_score",
    "first_sentence",
    "keyword_coverage",
    "load_concept_sets",
    "matches_concept",
]

REPEAT_PENALTY = 0.1  # per extra occurrence of a content word beyond its first
REPEAT_PENALTY_CAP = 0.5  # so that coverage still ranks completions that repeat a lot
LIST_FACTOR = 0.5  # what a bare list of the concepts keeps of its coverage

# Function words: free to repeat ("the dog and the boy"), and what makes a sentence more than a list.
# The auxiliaries' inflected forms are listed because lemma lookups would not cover all of them; words
# with an apostrophe left after dropping a possessive ("don't", "they're") count as function words too.
_FUNCTION_WORDS = """
    a an the this that these those some any each every no all both either neither another other such
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves one ones what which who whom
    whose where when why how there here then than so very too also just only not nor and or but if
    because while as until though although whether of at by for with about against between into through
    during before after above below to from up down in out on off over under again further once near
    around across along behind beside beyond inside onto toward towards upon within without
    be am is are was were been being have has had having do does did doing will would shall should can
    could may might must
"""
STOPWORDS = frozenset(_FUNCTION_WORDS.split())

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
# A sentence ends at . ! or ? (optionally followed by closing quotes or brackets) before whitespace or
# the end of the text, or at a line break; "3.5" and "e.g.," do not end one.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)|\n")


def first_sentence(text: str) -> str:
    """The completion's first sentence: the text up to its first sentence end, stripped.

    The end is the first ``.``, ``!`` or ``?`` (with any closing quotes or brackets) followed by whitespace
    or the end of the text, or the first line break, whichever comes first. Leading whitespace and blank
    lines are skipped. Text with no sentence end is one sentence.
    """
    text = text.strip()
    end = _SENTENCE_END.search(text)
    return text[: end.end()].strip() if end else text


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words of ``text``; a possessive ``'s`` is dropped ("dog's" -> "dog")."""
    text = text.lower().replace("’", "'")
    return [w.removesuffix("'s") for w in _WORD.findall(text)]


@functools.lru_cache(maxsize=65536)
def _lemmas(word: str) -> frozenset[str]:
    """Every lemma lemminflect gives ``word`` under any part of speech; rules for unknown words."""
    found = {lemma for lemmas in lemminflect.getAllLemmas(word).values() for lemma in lemmas}
    if not found:
        for upos in ("NOUN", "VERB"):
            found.update(lemminflect.getAllLemmasOOV(word, upos).get(upos, ()))
    return frozenset(found | {word})


@functools.lru_cache(maxsize=65536)
def _forms(concept: str) -> frozenset[str]:
    """Every inflection of ``concept`` under any part of speech ("knife" -> knives, knifed, ...)."""
    found = {form for forms in lemminflect.getAllInflections(concept).values() for form in forms}
    if not found:
        for upos in ("NOUN", "VERB"):
            found.update(
                f for forms in lemminflect.getAllInflectionsOOV(concept, upos).values() for f in forms
            )
    return frozenset(found | {concept})


def matches_concept(word: str, concept: str) -> bool:
    """Whether ``word`` (lower case) is a form of ``concept``: "threw" of "throw", "knives" of "knife".

    Both directions are checked: the word is one of the concept's inflections, or the concept is one of
    the word's lemmas. Ambiguous forms count for every reading ("leaves" is a form of leaf and of leave).
    """
    return word == concept or word in _forms(concept) or concept in _lemmas(word)


def _concept_list(concepts: list[str] | str) -> list[str]:
    items = concepts.split() if isinstance(concepts, str) else concepts
    return [c.strip().lower() for c in items if c.strip()]


def coverage_score(completion: str, concepts: list[str] | str) -> float:
    """The score of one completion; see :func:`keyword_coverage` for the formula."""
    wanted = _concept_list(concepts)
    if not wanted:
        raise ValueError("an example needs at least one concept")
    sentence = words(first_sentence(completion))
    keys: list[str] = []  # one per content word: the concept it is a form of, else its smallest lemma
    covered: set[str] = set()
    has_other = False
    for word in sentence:
        hits = [c for c in wanted if matches_concept(word, c)]
        covered.update(hits)
        if word in STOPWORDS or "'" in word:
            has_other = has_other or word not in ("and", "or")
            continue
        if not hits:
            has_other = True
        keys.append(hits[0] if hits else min(_lemmas(word)))
    coverage = len(covered) / len(wanted)
    if not has_other:
        coverage *= LIST_FACTOR
    extra = len(keys) - len(set(keys))
    return max(0.0, coverage - min(REPEAT_PENALTY_CAP, REPEAT_PENALTY * extra))


def keyword_coverage(
    prompts: list[str], completions: list[str], concepts: list[list[str] | str], **kwargs: Any
) -> list[float]:
    """Share of each example's concepts that the completion's first sentence uses, less repetitions.

    With ``n`` concepts, ``k`` of them used (in any inflected form) in the first sentence, and ``r`` extra
    occurrences of content words in it (every occurrence of a content word after its first; forms of one
    concept count as the same word, so "throw ... threw" is one extra)::

        score = max(0, factor * k / n - min(0.5, 0.1 * r))

    where ``factor`` is 1, or 0.5 when the sentence holds nothing but concept words joined by commas,
    "and" or "or" (a bare list such as "dog, frisbee, catch, throw."): a sentence needs at least one
    other word, such as an article, a preposition or a subject. Content words are all words outside
    :data:`STOPWORDS` (articles, pronouns, prepositions, conjunctions and auxiliaries, which may repeat
    freely) and contractions ("don't"). Only the first sentence counts (see :func:`first_sentence`), so
    neither a list spread over lines nor a long ramble collects concepts. A sentence that uses every
    concept and repeats no content word scores the optimum, 1.0: "The boy throws a frisbee and his dog
    catches it."

    Args:
        prompts: The prompts (unused).
        completions: The generated texts.
        concepts: Per example, its concepts: a list of words or one space-separated string.
        **kwargs: Other dataset columns, ignored.

    Returns:
        One score in [0, 1] per completion.
    """
    return [coverage_score(c, cs) for c, cs in zip(completions, concepts, strict=True)]


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
