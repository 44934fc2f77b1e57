"""The TRL adapter: TRL's RLOOTrainer as a textgym agent (``trl-rloo``), counted in env steps, resumable."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

import textgym
from textgym.agent import make_agent
from textgym.agents.checkpoint import CheckpointError
from textgym.agents.trl import TRLRLOO

ENV = "textgym/Pattern-v0"
SETTINGS = {"learning_rate": 3e-3, "batch_size": 16, "num_generations": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add overhead


def test_rloo_learns_pattern_within_its_budget_of_env_steps():
    """Measured: held-out 0.069 -> 0.43 (seed 0) and 0.49 (seed 1) after 6,000 generated tokens."""
    agent = make_agent("trl-rloo", ENV, seed=0, **SETTINGS)
    before = textgym.evaluate(agent, ENV, episodes=32)
    agent.learn(total_timesteps=6000)
    after = textgym.evaluate(agent, ENV, episodes=32)
    # It stops at the optimizer step whose completions reach the total: at most one batch beyond it.
    assert 6000 <= agent.num_timesteps < 6000 + 16 * gym.make(ENV).unwrapped.generation_budget
    assert np.isfinite(after.kl) and after.kl > 0  # evaluate sampled agent.lm, the model TRL trains
    assert after.score > before.score + 0.25, (before.score, after.score)


def test_learning_in_chunks_with_save_and_load_is_one_run(tmp_path):
    """What `textgym train --resume` relies on: TRL's checkpoint carries optimizer, RNGs and data order."""
    whole = TRLRLOO(ENV, seed=0, **SETTINGS).learn(total_timesteps=1200)
    first = TRLRLOO(ENV, seed=0, log_dir=str(tmp_path / "logs"), **SETTINGS).learn(total_timesteps=600)
    first.save(tmp_path / "point-1")
    resumed = TRLRLOO.load(tmp_path / "point-1")
    for a, b in zip(first.lm.parameters(), resumed.lm.parameters(), strict=True):
        assert torch.equal(a, b)  # the trained weights, before any further learning
    resumed.learn(total_timesteps=1200)
    assert resumed.num_timesteps == whole.num_timesteps
    for a, b in zip(whole.lm.parameters(), resumed.lm.parameters(), strict=True):
        assert torch.equal(a, b)
    with (tmp_path / "logs" / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    steps = [int(float(r["iteration"])) for r in rows]
    assert steps == list(range(1, len(steps) + 1))  # one row per optimizer step, none twice
    assert {"rewards/score/mean", "entropy", "time/total_timesteps"} <= set(rows[0])


def test_the_reward_reads_completions_as_the_env_does():
    """Special tokens are kept in the text (TRL's own decoding skips them), a final EOS is dropped."""
    agent = TRLRLOO(ENV, seed=0, **SETTINGS)
    score, bundle = agent.trainer.reward_funcs[0], agent.bundle
    tok, env = bundle.tokenizer, gym.make(ENV, model=bundle).unwrapped
    example = env.task.sample(np.random.default_rng(0), "train")
    answer = tok(example["target"], add_special_tokens=False)["input_ids"]
    eos = bundle.eos_token_ids[0]
    padded = [*answer[:2], tok.pad_token_id, *answer[2:]]
    kwargs = {"target": [example["target"]] * 2, "trainer_state": None}
    scores = score(["p", "p"], ["", ""], [[*answer, eos], [*padded, eos]], **kwargs)
    texts = [tok.decode(answer), tok.decode(padded)]
    assert scores == pytest.approx(env.reward_fn([example["prompt"]] * 2, texts, target=kwargs["target"]))
    assert scores[0] == pytest.approx(1.0) and scores[1] < 1.0


def test_bad_settings_and_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"fixed beta; got kl_target=3\.0"):
        TRLRLOO(ENV, env_kwargs={"kl_target": 3.0})
    with pytest.raises(TypeError, match=r"unknown TRLRLOOConfig field\(s\) \['n_epochs'\]"):
        TRLRLOO(ENV, n_epochs=4)
    (tmp_path / "not-a-checkpoint").mkdir()
    with pytest.raises(CheckpointError, match="not a TRLRLOO checkpoint folder"):
        TRLRLOO.load(tmp_path / "not-a-checkpoint")
