"""The TorchRL adapter: the vector env under GymWrapper, a token-level actor-critic, and PPO.

PPO's learning check is the TorchRL example's test (tests/test_examples.py), as SB3's is.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import sharpen
from gymnasium.vector import AutoresetMode
from torchrl.envs import RewardSum
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from textgym.agents.policy import LMPolicy
from textgym.agents.torchrl import TorchRLPPO, actor_critic, make_env

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add overhead


def test_check_env_specs_passes_on_the_wrapped_vector_env(copy_bundle):
    env = make_env("textgym/Copy-v1", num_envs=3, model=copy_bundle)
    check_env_specs(env, seed=0)
    envs = env.base_env.unwrapped
    assert envs.autoreset_mode == AutoresetMode.DISABLED == envs.metadata["autoreset_mode"]
    assert env.batch_size == (3,)
    assert env.action_spec.dtype == torch.int64 and env.action_spec.space.n == envs.vocab_size
    for key in ("input_ids", "attention_mask"):
        assert env.observation_spec[key].dtype == torch.int64
        assert env.observation_spec[key].shape == (3, envs.prompt_budget + envs.generation_budget)


def test_actor_and_critic_read_each_rows_last_real_token(copy_bundle):
    sharp = sharpen(copy_bundle)  # context-dependent logits: a wrong column gives wrong numbers
    policy = LMPolicy(sharp, value_head=True, seed=0)
    actor, critic = actor_critic(policy)
    env = make_env("textgym/Copy-v1", num_envs=2, model=sharp)
    td = env.reset(seed=0)
    for action in ([5, 6], [7, 8]):  # two generated tokens: right padding follows them
        td["action"] = torch.tensor(action)
        td = env.step(td)["next"].exclude("reward", "done", "terminated", "truncated")
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        out = critic(actor(td.clone()))
    lm = policy.lm
    for row in range(2):
        ids = td["input_ids"][row][td["attention_mask"][row] == 1][None]  # unpadded, independent
        with torch.no_grad():
            result = lm(ids, output_hidden_states=True)
            value = policy.value_head(result.hidden_states[-1][0, -1].float())[0]
        logp = torch.log_softmax(result.logits[0, -1].float(), -1)
        action = int(out["action"][row])
        assert float(out["action_log_prob"][row]) == pytest.approx(float(logp[action]), abs=1e-5)
        assert float(out["state_value"][row, 0]) == pytest.approx(float(value), abs=1e-5)
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = actor(td.clone())["action"]
    assert greedy.tolist() == [int(x) for x in torch.log_softmax(out["logits"], -1).argmax(-1)]


def test_torchrl_receives_what_the_native_vector_env_pays(copy_bundle):
    """Same seeds, actions and announced log-probs, KL shaping on: TorchRL's rewards are the native env's."""
    sharp = sharpen(copy_bundle)
    kwargs = {"model": sharp, "kl_coef": 0.1}
    env = make_env("textgym/Copy-v1", num_envs=3, **kwargs)
    env.append_transform(RewardSum())  # the agent's metrics transform: its returns must be (N, 1) too
    native = gym.make_vec(
        "textgym/Copy-v1",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.DISABLED,
        **kwargs,
    )
    td = env.reset(seed=7)
    native.reset(seed=7)
    generator = torch.Generator().manual_seed(0)
    returns, native_returns, ended = [], torch.zeros(3), 0
    for _ in range(40):  # several episodes per env, with resets between them
        actions = torch.randint(0, native.unwrapped.vocab_size, (3,), generator=generator)
        logprobs = -torch.rand(3, generator=generator) * 3
        td["action"], td["action_log_prob"] = actions, logprobs
        td, next_root = env.step_and_maybe_reset(td)
        native.unwrapped.set_action_logprobs(logprobs)
        obs, reward, terminated, _, info = native.step(actions)
        torch.testing.assert_close(td["next", "reward"][:, 0], reward, rtol=0, atol=0)
        assert td["next", "done"][:, 0].tolist() == terminated.tolist()
        assert ("kl" in info) and bool(info["_kl"].all())  # the announced log-probs reached the env
        native_returns += reward
        if terminated.any():
            returns.append(td["next", "episode_reward"][terminated, 0])
            torch.testing.assert_close(returns[-1], native_returns[terminated], rtol=0, atol=1e-6)
            native_returns[terminated] = 0
            ended += int(terminated.sum())
            obs, _ = native.reset(options={"reset_mask": terminated})
        for key in ("input_ids", "attention_mask"):  # the next step starts from the same state
            assert torch.equal(next_root[key], obs[key])
        td = next_root
    assert ended >= 6


def test_predict_save_and_load_round_trip(tmp_path):
    agent = TorchRLPPO(
        "textgym/Copy-v1", seed=0, learning_rate=1e-3, num_envs=4, n_steps=4, minibatch_size=8, n_epochs=1
    )
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(total_timesteps=16)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    assert agent.num_timesteps == 16
    path = agent.save(tmp_path / "agent.pt")
    loaded = TorchRLPPO.load(path)
    assert loaded.config == agent.config and loaded.num_timesteps == 16
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    obs, _ = gym.make_vec("textgym/Copy-v1", num_envs=6, vectorization_mode="vector_entry_point").reset(
        seed=3
    )
    numpy_obs = {key: value.numpy() for key, value in obs.items()}
    actions, state = agent.predict(numpy_obs, deterministic=True)
    assert state is None and isinstance(actions, np.ndarray) and actions.shape == (6,)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)  # tensors too
    torch.manual_seed(1)
    sampled = agent.predict(numpy_obs)[0]
    torch.manual_seed(1)
    np.testing.assert_array_equal(loaded.predict(numpy_obs)[0], sampled)
    single = agent.predict({key: value[2] for key, value in numpy_obs.items()}, deterministic=True)[0]
    assert single.shape == () and int(single) == int(actions[2])


def test_the_single_pass_loss_equals_the_two_pass_loss():
    """The agent's ClipPPOLoss reads the value from the actor's own pass; TorchRL's plain wiring runs the
    critic again. Same losses, same gradients (so the critic really trains through the shared pass)."""
    agent = TorchRLPPO("textgym/Copy-v1", seed=0, num_envs=4, n_steps=6)
    with torch.no_grad():
        data = agent.env.rollout(6, agent.actor, break_when_any_done=False)
        agent.gae(data)  # shifted: one critic call
        shifted = data.select("advantage", "value_target").clone()
        GAE(gamma=1.0, lmbda=1.0, value_network=agent.critic, deactivate_vmap=True)(data)  # two calls
    torch.testing.assert_close(shifted["advantage"], data["advantage"])
    batch = data.reshape(-1).exclude("logits")
    two_pass = ClipPPOLoss(agent.actor, agent.critic, entropy_coeff=0.01, normalize_advantage=True)
    results = []
    for loss_module in (agent.loss, two_pass):
        agent.optimizer.zero_grad()
        out = loss_module(batch.clone())
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
        results.append((out.detach(), [p.grad.clone() for p in agent.policy.parameters()]))
    (single, single_grads), (double, double_grads) = results
    for key in ("loss_objective", "loss_critic", "loss_entropy"):
        torch.testing.assert_close(single[key], double[key])
    for a, b in zip(single_grads, double_grads, strict=True):
        torch.testing.assert_close(a, b)
    assert float(single["loss_critic"]) > 0 and agent.policy.value_head.weight.grad.abs().sum() > 0


def test_the_same_seed_gives_the_same_run():
    settings = {"learning_rate": 1e-3, "num_envs": 8, "n_steps": 4, "minibatch_size": 16, "n_epochs": 2}
    runs = []
    for _ in range(2):
        agent = TorchRLPPO("textgym/Copy-v1", seed=5, **settings)
        rewards: list[float] = []
        agent.learn(
            total_timesteps=96, callback=lambda a, m, out=rewards: out.append(m["objective/rlhf_reward"])
        )
        runs.append((rewards, [p.detach().clone() for p in agent.policy.parameters()]))
    assert runs[0][0] == runs[1][0] and len(runs[0][0]) == 3
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
