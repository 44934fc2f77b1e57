"""The Agent protocol: textgym's agents, the adapters and a user's class by import string alike."""

from __future__ import annotations

import tempfile

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.agent import AGENTS, Agent, agent_class, make_agent


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_built_in_agent_meets_the_protocol(name):
    assert isinstance(agent_class(name), type)
    assert issubclass(agent_class(name), Agent)


def test_a_name_that_is_not_an_agent_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown agent 'ppo2'.*'reinforce'"):
        agent_class("ppo2")
    with pytest.raises(
        TypeError, match="Evaluation is not a textgym Agent: it has no learn, predict, save, load"
    ):
        agent_class("textgym.evaluation:Evaluation")


def test_a_users_agent_by_import_string_trains_evaluates_and_round_trips(tmp_path):
    """No registration call: the import string is enough, and it learns Pattern-v0's secret.

    Measured: held-out 1.0 (seeds 0 and 1) after 6,000 steps, from about 0.05.
    """
    agent = make_agent("user_agents:PositionAgent", "textgym/Pattern-v0", seed=0)
    before = textgym.evaluate(agent, "textgym/Pattern-v0", episodes=16)
    agent.learn(total_timesteps=6000)
    after = textgym.evaluate(agent, "textgym/Pattern-v0", episodes=16)
    assert np.isnan(before.kl)  # predict-only: its KL is unknown
    assert after.score > before.score + 0.3, (before.score, after.score)
    agent.save(tmp_path / "agent.json")
    loaded = agent_class("user_agents:PositionAgent").load(tmp_path / "agent.json")
    np.testing.assert_array_equal(loaded.logits, agent.logits)


@pytest.mark.parametrize("name", ["reinforce", "sb3-ppo"])
def test_textgym_agents_are_made_and_evaluated_through_the_same_door(name, tmp_path, monkeypatch):
    """make_agent builds ours as a user's; evaluate samples the agent's LM (known KL); save/load."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where SB3's default logger makes folders
    config = {"batch_size": 4} if name == "reinforce" else {"n_envs": 2, "n_steps": 4, "batch_size": 8}
    agent = make_agent(name, "textgym/Copy-v1", seed=1, **config)
    assert isinstance(agent, Agent)
    result = textgym.evaluate(agent, "textgym/Copy-v1", episodes=4, num_envs=4)
    assert np.isfinite(result.kl)  # sampled from agent.lm, so the KL is known
    agent.learn(total_timesteps=16)
    assert not list(tmp_path.glob("SB3-*"))  # no litter in the temp folder from a run without log_dir
    path = tmp_path / "agent"
    agent.save(path)
    loaded = agent_class(name).load(path)
    obs, _ = gym.make("textgym/Copy-v1").reset(seed=0)
    batch = {k: v[None] for k, v in obs.items()}
    expected = agent.predict(batch, deterministic=True)[0]
    np.testing.assert_array_equal(loaded.predict(batch, deterministic=True)[0], expected)
