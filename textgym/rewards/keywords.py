"""Keyword coverage: the share of a concept set that a completion's first sentence uses, in any word form.

A repeated content word costs a little; a bare list of the concepts keeps only part of its coverage.
Word forms come from ``lemminflect``, whose lemma and inflection tables ship inside its wheel, so scoring
needs no data download. :class:`textgym.tasks.KeywordsTask` uses it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import lemminflect

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
