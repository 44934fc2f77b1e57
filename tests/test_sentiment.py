"""Sentiment-v0: VADER rewards the target polarity of the continuation, the shipped openings fit their
token range, the split is fixed, and a scripted episode on the default model scores what VADER says."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from textgym.envs import make_vector_env
from textgym.models import load_model
from textgym.rewards.sentiment import negative_sentiment, vader_sentiment
from textgym.tasks.sentiment import INSTRUCTION, SentimentEnv, SentimentTask, load_openings

POSITIVE = " turned out to be wonderful. A brilliant, funny and beautiful film that I loved."
NEGATIVE = " were a complete waste of time. A dull, ugly and painfully boring mess that I hated."


def draw(task: SentimentTask, split: str, seed: int, n: int = 200) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [task.sample(rng, split) for _ in range(n)]


@pytest.mark.parametrize("target", ["positive", "negative"])
def test_oracle_continuation_scores_high_and_the_opposite_scores_low(target):
    task = SentimentTask(target=target)
    examples = draw(task, "train", seed=0, n=20)
    prompts = [ex["prompt"] for ex in examples]
    columns = {key: [ex[key] for ex in examples] for key in examples[0] if key != "prompt"}
    good, bad = (POSITIVE, NEGATIVE) if target == "positive" else (NEGATIVE, POSITIVE)
    assert min(task.reward(prompts, [good] * 20, **columns)) > 0.8
    assert max(task.reward(prompts, [bad] * 20, **columns)) < -0.5
    # Without the columns the task still rewards its own target.
    assert task.reward(prompts[:1], [good]) > task.reward(prompts[:1], [bad])
    assert task.reward(prompts, [""] * 20, **columns) == [0.0] * 20


def test_only_the_continuation_is_scored():
    gushing = INSTRUCTION + "An absolutely wonderful, joyful masterpiece that I adore, and"
    bitter = INSTRUCTION + "A horrible, hateful disaster that I despise, and"
    for completion in (POSITIVE, NEGATIVE, " the lights went out at nine."):
        assert vader_sentiment([gushing], [completion]) == vader_sentiment([bitter], [completion])
    assert vader_sentiment([gushing], [" the lights went out at nine."]) == [0.0]


def test_reward_functions_agree_and_honour_polarity_per_item():
    completions = [POSITIVE, NEGATIVE, "", "   "]
    plain = vader_sentiment(["p"] * 4, completions)
    assert plain[0] > 0.8 and plain[1] < -0.5 and plain[2:] == [0.0, 0.0]
    assert negative_sentiment(["p"] * 4, completions, opening=["x"] * 4) == [-s for s in plain]
    mixed = vader_sentiment(["p"] * 2, [POSITIVE, POSITIVE], polarity=["positive", "negative"], other=[1, 2])
    assert mixed == [plain[0], -plain[0]]
    with pytest.raises(ValueError, match="polarity must be one of"):
        vader_sentiment(["p"], [POSITIVE], polarity=["happy"])
    with pytest.raises(ValueError, match="target must be one of"):
        SentimentTask(target="neutral")


@pytest.mark.slow
def test_openings_are_unique_and_8_to_40_smollm2_tokens():
    openings = load_openings()
    assert len(openings) >= 300
    assert len({o.lower() for o in openings}) == len(openings)
    tokenizer = load_model("smollm2").tokenizer
    lengths = {o: len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in openings}
    assert {o: n for o, n in lengths.items() if not 8 <= n <= 40} == {}


def test_split_is_fixed_disjoint_and_about_a_fifth():
    task = SentimentTask()
    train, test = set(task.openings["train"]), set(task.openings["test"])
    assert not train & test and train | test == set(load_openings())
    assert 0.15 <= len(test) / len(load_openings()) <= 0.25
    assert all(SentimentTask().split_of(o) == "test" for o in test)
    drawn_test = {ex["opening"] for ex in draw(task, "test", seed=0, n=400)}
    drawn_train = {ex["opening"] for ex in draw(task, "train", seed=0, n=400)}
    assert drawn_test <= test and drawn_train <= train
    assert len(drawn_test) > 0.9 * len(test)  # the whole split is reachable
    with pytest.raises(ValueError, match="split='valid'"):
        task.sample(np.random.default_rng(0), "valid")


def test_sampling_is_deterministic_under_a_seed():
    task = SentimentTask(target="negative")
    assert draw(task, "train", seed=7) == draw(task, "train", seed=7)
    assert draw(task, "train", seed=7) != draw(task, "train", seed=8)
    ex = draw(task, "test", seed=3, n=1)[0]
    assert ex["prompt"] == INSTRUCTION + ex["opening"] and ex["polarity"] == "negative"


@pytest.mark.slow
def test_scripted_episode_on_the_default_model_scores_its_vader():
    env = SentimentEnv(kl_coef=0.05)  # the task's default model, SmolLM2-135M-Instruct
    obs, info = env.reset(seed=0)
    assert info["prompt"].startswith(INSTRUCTION)
    assert obs["input_ids"].shape == (96 + 32,)
    prompt_ids = obs["input_ids"][: env.prompt_budget][obs["attention_mask"][: env.prompt_budget] == 1]
    assert "<|im_start|>assistant" in env.tokenizer.decode(prompt_ids)
    assert env.examples[0]["opening"] in env.tokenizer.decode(prompt_ids)

    actions = [
        *env.tokenizer(POSITIVE, add_special_tokens=False)["input_ids"],
        env.eos_token_ids[0],
    ]
    assert len(actions) <= env.generation_budget
    for i, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        assert terminated == (i == len(actions) - 1) and not truncated
    assert info["stopped"] is True and info["completion"].strip() == POSITIVE.strip()
    assert info["score"] == pytest.approx(vader_sentiment([""], [info["completion"]])[0], abs=1e-6)
    assert info["score"] > 0.8
    assert reward == pytest.approx(info["score"] + info["non_score_reward"], abs=1e-5)


@pytest.mark.slow
def test_vector_env_pays_the_negative_target():
    bundle = load_model("smollm2")
    envs = make_vector_env(
        SentimentEnv,
        num_envs=2,
        model=bundle,
        target="negative",
        kl_coef=0.0,
        autoreset_mode=AutoresetMode.DISABLED,
    )
    envs.reset(seed=0)
    eos = bundle.eos_token_ids[0]
    scripts = [
        [*bundle.tokenizer(text, add_special_tokens=False)["input_ids"], eos] for text in (POSITIVE, NEGATIVE)
    ]
    width = max(map(len, scripts))
    scripts = [s + [eos] * (width - len(s)) for s in scripts]  # a finished env sits out its extra actions
    scores = {}
    for t in range(width):
        _, _, terminated, _, infos = envs.step(np.array([s[t] for s in scripts]))
        for i in terminated.nonzero()[:, 0].tolist():
            scores[i] = float(infos["score"][i])
    assert scores[1] > 0.8 and scores[0] < -0.5
