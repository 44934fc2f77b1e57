"""The stable-baselines3 adapter: SB3's PPO and A2C hold a causal LM as their policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sharpen
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env

import textgym  # noqa: F401
from textgym.agents.sb3 import LM_DEFAULTS, LMActorCriticPolicy


@pytest.fixture(scope="module")
def model_dir(copy_bundle, tmp_path_factory):
    """The Copy task's tiny model with sharp weights, saved as a folder: SB3 names the model by path."""
    folder = tmp_path_factory.mktemp("copy-model")
    sharp = sharpen(copy_bundle)
    sharp.model.save_pretrained(folder)
    sharp.tokenizer.save_pretrained(folder)
    return str(folder)


def make_env(n_envs: int = 2):
    return make_vec_env("textgym:textgym/Copy-v0", n_envs=n_envs, seed=0)


def test_pretrained_weights_are_kept_and_the_lm_stays_in_eval_mode(model_dir):
    from textgym.models import load_model

    agent = PPO(LMActorCriticPolicy, make_env(), policy_kwargs={"model": model_dir}, n_steps=8, batch_size=8)
    base = load_model(model_dir).model.state_dict()
    for name, tensor in agent.policy.lm_policy.lm.state_dict().items():
        torch.testing.assert_close(tensor, base[name], rtol=0, atol=0)  # no orthogonal re-init
    agent.policy.set_training_mode(True)
    assert not agent.policy.lm_policy.lm.training


def test_logits_and_log_probs_come_from_the_last_real_column(model_dir):
    agent = PPO(LMActorCriticPolicy, make_env(), policy_kwargs={"model": model_dir}, n_steps=8, batch_size=8)
    env = make_env()
    obs = env.reset()
    for _ in range(2):  # two generated tokens: right padding follows them
        obs, *_ = env.step(np.array([5, 6]))
    tensors = {k: torch.as_tensor(v).float() for k, v in obs.items()}  # as SB3's buffer hands them over
    with torch.no_grad():
        actions, values, log_prob = agent.policy(tensors, deterministic=True)
    lm = agent.policy.lm_policy.lm
    for row in range(2):
        ids = torch.as_tensor(obs["input_ids"][row][obs["attention_mask"][row] == 1])[None]
        with torch.no_grad():
            expected = torch.log_softmax(lm(ids).logits[0, -1].float(), -1)  # unpadded, independent
        assert int(actions[row]) == int(expected.argmax())
        assert float(log_prob[row]) == pytest.approx(float(expected.max()), abs=1e-4)
    with torch.no_grad():
        values2, log_prob2, entropy = agent.policy.evaluate_actions(tensors, actions)
    torch.testing.assert_close(values2, values)
    torch.testing.assert_close(log_prob2, log_prob)  # so PPO's first ratio is exactly 1
    assert values.shape == (2, 1) and (entropy > 0).all()


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_sb3_trains_the_lm_and_save_load_round_trips(model_dir, algo, tmp_path):
    extra = {"n_steps": 8, "batch_size": 8, "n_epochs": 2} if algo is PPO else {"n_steps": 4}
    agent = algo(
        LMActorCriticPolicy,
        make_env(),
        policy_kwargs={"model": model_dir},
        seed=0,
        **{**LM_DEFAULTS, "learning_rate": 1e-3},
        **extra,
    )
    before = [p.detach().clone() for p in agent.policy.lm_policy.parameters()]
    agent.learn(16)
    after = list(agent.policy.lm_policy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # the LM was trained
    if algo is A2C:
        assert isinstance(agent.policy.optimizer, torch.optim.RMSprop)  # A2C's optimizer is honoured
    agent.save(tmp_path / "agent")
    loaded = algo.load(tmp_path / "agent", env=make_env())
    obs = make_env().reset()
    np.testing.assert_array_equal(
        agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
