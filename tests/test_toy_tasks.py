"""The toy rewards measure what they claim: the oracle scores the optimum, wrong answers score low."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

from textgym.rewards import sequence_match
from textgym.tasks import CopyTask, PatternTask, ReverseTask
from textgym.tasks.toy import SYMBOLS


@pytest.mark.parametrize("task", [PatternTask(), CopyTask(), ReverseTask()], ids=lambda t: t.name)
def test_oracle_scores_the_optimum_and_bad_answers_score_low(task):
    rng = np.random.default_rng(0)
    examples = [task.sample(rng, "train") for _ in range(50)]
    prompts = [ex["prompt"] for ex in examples]
    targets = [ex["target"] for ex in examples]
    assert task.reward(prompts, targets, target=targets) == [task.optimal_score] * 50
    assert max(task.reward(prompts, [""] * 50, target=targets)) == 0.0
    assert max(task.reward(prompts, [t + " " + t for t in targets], target=targets)) <= 0.5
    garbled = [" ".join("z" for _ in t.split()) for t in targets]
    assert max(task.reward(prompts, garbled, target=targets)) == 0.0


def test_sequence_match_partial_credit():
    assert sequence_match(["p"], ["a b x"], target=["a b c"]) == [pytest.approx(2 / 3)]
    assert sequence_match(["p"], ["a b c d"], target=["a b c"]) == [pytest.approx(3 / 4)]
    assert sequence_match(["p"], ["a b"], target=["a b c"]) == [pytest.approx(2 / 3)]


def test_reverse_targets_are_reversed_prompts():
    task = ReverseTask()
    ex = task.sample(np.random.default_rng(1), "train")
    assert ex["prompt"].split()[1:-1] == ex["target"].split()[::-1]
    assert ex["prompt"].endswith(" =")


@pytest.mark.parametrize("task", [CopyTask(), ReverseTask()], ids=lambda t: t.name)
def test_splits_are_fixed_and_disjoint(task):
    def draw(split, seed):
        rng = np.random.default_rng(seed)
        return {task.sample(rng, split)["prompt"] for _ in range(300)}

    train, test = draw("train", 0), draw("test", 0)
    assert train and test and not (train & test)
    assert draw("test", 0) == test  # the same seed draws the same examples
    with pytest.raises(ValueError, match="split='valid'"):
        task.sample(np.random.default_rng(0), "valid")


@pytest.mark.parametrize("task", [CopyTask(), ReverseTask()], ids=lambda t: t.name)
def test_what_the_policy_sees_decides_the_next_token(task):
    """Every prompt plus partial answer calls for one next word, so a policy can score the optimum.

    v0's prompts did not end in a marker, and "Copy: a b" with "a" written was the prompt "Copy: a b a":
    the same text, wanting "b" in one case and the first "a" of the answer in the other.
    """
    wanted: dict[tuple[str, ...], set[str]] = {}  # the words seen -> the next words wanted
    for length in range(task.min_length, task.max_length + 1):
        for symbols in itertools.product(SYMBOLS, repeat=length):
            prompt = task.prompt(" ".join(symbols)).split()
            answer = [*task.target(" ".join(symbols)).split(), "</s>"]
            for written in range(len(answer)):
                wanted.setdefault((*prompt, *answer[:written]), set()).add(answer[written])
    assert len(wanted) > 4**4 and all(len(words) == 1 for words in wanted.values())


def test_tokens_that_decode_to_nothing_do_not_pass_for_a_clean_stop(copy_bundle):
    """Padding the answer with BOS/PAD (which skip_special_tokens would hide) must not score the optimum."""
    from textgym.tasks import CopyEnv

    env = CopyEnv(model=copy_bundle)
    env.reset(seed=0)
    target = env.examples[0]["target"]
    answer = copy_bundle.tokenizer(target, add_special_tokens=False)["input_ids"]
    bos, pad = copy_bundle.tokenizer.bos_token_id, copy_bundle.tokenizer.pad_token_id
    actions = (answer + [bos, pad] * 4)[: env.generation_budget]
    for action in actions:
        _, _, terminated, _, info = env.step(action)
    assert terminated and info["stopped"] is False
    assert info["completion"].startswith(target) and "<s>" in info["completion"]
    assert info["score"] < 1.0


@pytest.mark.parametrize("name", ["Copy", "Reverse"])
def test_the_v0_ids_point_to_v1(name):
    with pytest.raises(gym.error.DeprecatedEnv, match=f"Please use `textgym/{name}-v1`"):
        gym.make(f"textgym/{name}-v0")
