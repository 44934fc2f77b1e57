"""Keywords-v0: the coverage reward against hand-written oracles, the concept data, the split, and one real
episode with the default model."""

from __future__ import annotations

import re
from collections import Counter

import lemminflect
import numpy as np
import pytest
from gymnasium.utils.seeding import np_random
from pytest import approx

from textgym.rewards.keywords import STOPWORDS, first_sentence, keyword_coverage, matches_concept
from textgym.tasks.keywords import KeywordsEnv, KeywordsTask, load_concept_sets

# Fluent sentences, written by hand, that use every concept of a shipped set exactly once.
ORACLES = {
    ("dog", "frisbee", "catch", "throw"): "The boy throws a frisbee and his dog catches it.",
    ("chef", "knife", "chop", "onion"): "The chef chopped an onion with a sharp knife.",
    ("child", "kite", "wind", "fly"): "The children flew their kites in the wind.",
    (
        "farmer",
        "tractor",
        "field",
        "plow",
        "seed",
    ): "A farmer plowed the field with a tractor to sow seeds.",
    ("man", "newspaper", "read", "morning", "train"): "Each morning, a man reads the newspaper on a train.",
    ("cat", "mouse", "catch", "barn"): "Our cat caught a mouse in the barn.",
    ("bear", "salmon", "catch", "river", "jump"): "A bear caught a salmon as it jumped up the river.",
    ("knight", "sword", "horse", "ride"): "The knight rode his horse with a sword at his side.",
    ("wolf", "moon", "howl"): "A lone wolf howled at the full moon.",
    ("sheep", "wool", "shear", "farmer"): "The farmer sheared the sheep for their wool.",
    ("fisherman", "fish", "clean", "knife"): "The fisherman cleaned the fish with his knife.",
    ("child", "tooth", "brush", "bathroom"): "The child brushed her teeth in the bathroom.",
}


def score(completion: str, concepts: list[str] | str) -> float:
    return keyword_coverage(["prompt"], [completion], [concepts])[0]


@pytest.mark.parametrize("concepts", list(ORACLES))
def test_fluent_sentence_using_every_concept_scores_the_optimum(concepts):
    assert concepts in set(load_concept_sets())
    assert score(ORACLES[concepts], list(concepts)) == KeywordsTask.optimal_score == 1.0


def test_missing_concepts_lower_the_score_proportionally():
    concepts = ["dog", "frisbee", "catch", "throw"]
    assert score("The boy throws a frisbee to his dog.", concepts) == approx(3 / 4)
    assert score("The boy throws a frisbee.", concepts) == approx(2 / 4)
    assert score("A dog sleeps on the porch.", concepts) == approx(1 / 4)
    assert score("Nothing relevant happens here.", concepts) == 0.0
    assert score("", concepts) == 0.0


def test_repeated_content_words_are_penalised_and_the_penalty_is_capped():
    concepts = ["dog", "frisbee", "catch", "throw"]
    # "dog" twice: one extra occurrence.
    assert score("The dog threw a frisbee and another dog caught it.", concepts) == approx(0.9)
    # Forms of one concept are one word: "throws" then "threw" is an extra occurrence too.
    assert score("The boy throws a frisbee; his dog threw it back and caught it.", concepts) == approx(0.9)
    # Non-concept content words count as well; function words ("the", "and") repeat freely.
    assert score("The big boy and the big dog throw and catch the frisbee.", concepts) == approx(0.9)
    spam = "The dog " + "dog " * 20 + "throws and catches a frisbee."
    assert score(spam, concepts) == approx(0.5)  # 20 extras, capped at 0.5


def test_bare_list_of_the_concepts_gets_half_credit():
    concepts = ["dog", "frisbee", "catch", "throw"]
    assert score("dog, frisbee, catch, throw.", concepts) == approx(0.5)
    assert score("Dog, frisbee, catch and throw", concepts) == approx(0.5)
    assert score("dog frisbee catch", concepts) == approx(0.5 * 3 / 4)
    # One word beyond the concepts makes it a sentence.
    assert score("Dogs catch thrown frisbees.", concepts) == approx(0.5)
    assert score("Our dogs catch thrown frisbees.", concepts) == 1.0


def test_only_the_first_sentence_counts():
    concepts = ["dog", "frisbee", "catch", "throw"]
    assert score("The dog runs. The boy throws a frisbee and his dog catches it.", concepts) == 0.25
    assert score("Sure! The boy throws a frisbee and his dog catches it.", concepts) == 0.0
    assert score("A dog\ncatch\nthrow\nfrisbee", concepts) == 0.25
    assert score('  "The boy throws a frisbee and his dog catches it." Then dog dog dog.', concepts) == 1.0
    assert first_sentence("It costs 3.5 dollars, e.g. for a dog. Next.") == "It costs 3.5 dollars, e.g."


@pytest.mark.parametrize(
    ("word", "concept"),
    [
        ("throws", "throw"),
        ("threw", "throw"),
        ("thrown", "throw"),
        ("throwing", "throw"),
        ("dogs", "dog"),
        ("knives", "knife"),
        ("ran", "run"),
        ("caught", "catch"),
        ("children", "child"),
        ("teeth", "tooth"),
        ("mice", "mouse"),
        ("flew", "fly"),
        ("chopped", "chop"),
        ("wolves", "wolf"),
        ("frisbees", "frisbee"),  # unknown to lemminflect's tables: its rules
    ],
)
def test_inflected_and_irregular_forms_match(word, concept):
    assert matches_concept(word, concept)


@pytest.mark.parametrize(("word", "concept"), [("dig", "dog"), ("fisherman", "fish"), ("catcher", "catch")])
def test_other_words_do_not_match(word, concept):
    assert not matches_concept(word, concept)


def test_inflected_sentence_and_string_concepts_and_extra_columns():
    completions = ["Two chefs were chopping onions with their knives.", "The dogs ran."]
    scores = keyword_coverage(
        ["p", "q"], completions, concepts=["chef knife chop onion", ["dog", "run", "park"]], extra=[1, 2]
    )
    assert scores == [1.0, approx(2 / 3)]


def test_concept_data():
    sets = load_concept_sets()
    assert len(sets) >= 300 and len(set(map(frozenset, sets))) == len(sets)
    sizes = Counter(len(s) for s in sets)
    assert set(sizes) == {3, 4, 5} and min(sizes.values()) >= 50
    for concepts in sets:
        assert len(set(concepts)) == len(concepts)
        for concept in concepts:
            assert re.fullmatch(r"[a-z]+", concept) and concept not in STOPWORDS, concept
            lemmas = {x for forms in lemminflect.getAllLemmas(concept).values() for x in forms}
            assert not lemmas or concept in lemmas, f"{concept} is not a base form"
            # No word of the set is a form of another: each concept needs its own word.
            assert not any(matches_concept(concept, other) for other in concepts if other != concept)


def test_split_is_fixed_disjoint_and_about_a_fifth():
    task = KeywordsTask()
    train, test = set(task.sets["train"]), set(task.sets["test"])
    assert not train & test and train | test == set(load_concept_sets())
    assert 0.15 <= len(test) / (len(train) + len(test)) <= 0.25
    assert task.sets == KeywordsTask().sets  # no randomness in the split
    # A content hash: these two sets sit on either side, on every machine.
    assert task.split_of("dog frisbee catch throw") == "train"
    assert task.split_of("chef knife chop onion") == "test"
    assert len(KeywordsTask(test_fraction=0.5).sets["test"]) > len(test)


def test_sampling_is_deterministic_and_respects_the_split():
    task = KeywordsTask()
    for split in task.splits:
        first = [task.sample(np.random.default_rng(7), split) for _ in range(2)]
        assert first[0] == first[1]
        rng = np.random.default_rng(0)
        examples = [task.sample(rng, split) for _ in range(50)]
        assert all(tuple(ex["concepts"]) in task.sets[split] for ex in examples)
        assert len({tuple(ex["concepts"]) for ex in examples}) > 20
        ex = examples[0]
        assert (
            ex["prompt"]
            == "Write one sentence that uses all of these words: " + ", ".join(ex["concepts"]) + "."
        )
    with pytest.raises(ValueError, match="splits"):
        task.sample(np.random.default_rng(0), "validation")


def test_env_classes_bind_the_task_and_share_the_manual():
    assert KeywordsEnv.task_class is KeywordsTask
    for section in ("## Description", "## Rewards", "## Episode End", "## Arguments", "## Version History"):
        assert section in KeywordsEnv.__doc__
    assert 'gym.make("textgym/Keywords-v0"' in KeywordsEnv.__doc__


@pytest.mark.slow
def test_real_episode_with_the_default_model_scores_an_oracle_sentence_one():
    # Resets prefill the model (seconds on a CPU), so the seed whose set has an oracle is found with the
    # task alone: the env draws with its np_random, seeded as Gymnasium seeds it.
    task = KeywordsTask()
    seed = next(s for s in range(1000) if tuple(task.sample(np_random(s)[0], "train")["concepts"]) in ORACLES)
    env = KeywordsEnv(model="smollm2")
    obs, info = env.reset(seed=seed)
    concepts = tuple(env.examples[0]["concepts"])
    assert concepts in ORACLES
    assert env.prompt_budget == 64 and env.generation_budget == 40
    assert "<|im_start|>assistant" in env.tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    assert info["prompt"] == task.prompt(concepts)
    answer = env.tokenizer(ORACLES[concepts], add_special_tokens=False)["input_ids"]
    for action in [*answer, env.eos_token_ids[0]]:
        obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and info["stopped"] is True
    assert info["completion"] == ORACLES[concepts]
    assert info["score"] == 1.0
