"""The stable-baselines3 adapter: SB3's PPO and A2C hold a causal LM as their policy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import sharpen
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import textgym  # noqa: F401
from textgym.agents.sb3 import (
    LM_DEFAULTS,
    LMActorCriticPolicy,
    LMRolloutBuffer,
    MaskableLMActorCriticPolicy,
    MaskableLMRolloutBuffer,
    TextgymCallback,
    TextgymVecEnv,
)


@pytest.fixture(scope="module")
def model_dir(copy_bundle, tmp_path_factory):
    """The Copy task's tiny model with sharp weights, saved as a folder: SB3 names the model by path."""
    folder = tmp_path_factory.mktemp("copy-model")
    sharp = sharpen(copy_bundle)
    sharp.model.save_pretrained(folder)
    sharp.tokenizer.save_pretrained(folder)
    return str(folder)


def make_env(n_envs: int = 2, **env_kwargs):
    return make_vec_env("textgym:textgym/Copy-v1", n_envs=n_envs, seed=0, env_kwargs=env_kwargs)


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


# ----------------------------------------------------------------- the VecEnv bridge, exact KL, cost
class Record(BaseCallback):
    """Copies each rollout out of the buffer before SB3 trains on it (and flattens it)."""

    def __init__(self):
        super().__init__()
        self.rollouts, self.betas = [], []

    def _on_rollout_start(self):
        self.betas.append(self.training_env.get_attr("kl_coef")[0])
        self.scores = np.zeros((self.model.n_steps, self.training_env.num_envs))

    def _on_step(self):
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            if done:
                self.scores[self.locals["n_steps"], i] = info["score"]
        return True

    def _on_rollout_end(self):
        buffer = self.model.rollout_buffer
        obs = {k: v.copy() for k, v in buffer.observations.items()}
        lm = copy.deepcopy(self.model.policy.lm_policy.lm)  # the weights that sampled this rollout
        self.rollouts.append(
            (obs, buffer.actions[..., 0].copy(), buffer.rewards.copy(), self.scores.copy(), lm)
        )


def independent_logprob(model, ids, mask, action, temperature=1.0):
    """log p(action | the observation's real tokens) from one unpadded, uncached forward."""
    real = torch.as_tensor(ids[mask == 1])[None]
    with torch.no_grad():
        return float(torch.log_softmax(model(real).logits[0, -1].float() / temperature, -1)[int(action)])


@pytest.mark.parametrize("kl", [{"kl_coef": 0.2}, {"kl_coef": 0.2, "kl_target": 1.0, "kl_horizon": 20}])
def test_sb3_stores_the_exact_kl_shaped_reward(model_dir, kl):
    """Stored reward = score - beta * (log pi - log pi_ref), token by token, with the env's (moving) beta."""
    env = TextgymVecEnv("textgym/Copy-v1", num_envs=2, **kl)
    agent = PPO(
        LMActorCriticPolicy,
        env,
        policy_kwargs={"model": model_dir, "temperature": 0.8},
        rollout_buffer_class=LMRolloutBuffer,
        n_steps=12,
        batch_size=8,
        n_epochs=1,
        seed=0,
        **LM_DEFAULTS,
    )
    record = Record()
    agent.learn(48, callback=[TextgymCallback(), record])
    ref = env.envs.ref_model.model
    assert len(record.rollouts) == 2
    for (obs, actions, rewards, scores, lm), beta in zip(record.rollouts, record.betas, strict=True):
        for s, e in np.ndindex(rewards.shape):
            ids, mask, a = obs["input_ids"][s, e], obs["attention_mask"][s, e], actions[s, e]
            log_pi = independent_logprob(lm, ids, mask, a, temperature=0.8)
            log_ref = independent_logprob(ref, ids, mask, a)
            expected = scores[s, e] - beta * (log_pi - log_ref)
            assert rewards[s, e] == pytest.approx(expected, abs=1e-4)
    if "kl_target" in kl:
        assert record.betas[1] != record.betas[0]  # moved once, after the first rollout
    else:
        assert record.betas == [0.2, 0.2]


def test_adaptive_beta_follows_ziegler_once_per_rollout(model_dir):
    env = TextgymVecEnv("textgym/Copy-v1", num_envs=2, kl_coef=0.2, kl_target=1.0, kl_horizon=20)
    agent = PPO(
        LMActorCriticPolicy, env, policy_kwargs={"model": model_dir},
        rollout_buffer_class=LMRolloutBuffer, n_steps=12, batch_size=24, n_epochs=1, seed=0,
    )  # fmt: skip
    callback = TextgymCallback()
    agent.learn(24, callback=callback)
    kls = callback._kls
    assert kls and all(k > 0 for k in kls)  # the sharp policy is far from the reference
    error = np.clip(np.mean(kls) / 1.0 - 1.0, -0.2, 0.2)
    assert env.envs.kl_coef == pytest.approx(0.2 * (1 + error * len(kls) / 20))


def test_the_buffer_refuses_to_run_without_the_env_beta(model_dir):
    env = TextgymVecEnv("textgym/Copy-v1", num_envs=2, kl_coef=0.1)
    agent = PPO(
        LMActorCriticPolicy, env, policy_kwargs={"model": model_dir},
        rollout_buffer_class=LMRolloutBuffer, n_steps=4, batch_size=8,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="TextgymCallback"):
        agent.learn(8)
    plain = PPO(LMActorCriticPolicy, env, policy_kwargs={"model": model_dir}, n_steps=4, batch_size=8)
    with pytest.raises(TypeError, match="LMRolloutBuffer"):
        plain.learn(8, callback=TextgymCallback())


def test_vec_env_matches_dummy_vec_env():
    """Same seeds and actions: the bridge gives DummyVecEnv's observations, rewards, dones and infos."""
    ours, dummy = TextgymVecEnv("textgym/Copy-v1", num_envs=3, kl_coef=0.1), make_env(3, kl_coef=0.1)
    ours.seed(5)
    dummy.seed(5)
    obs_a, obs_b = ours.reset(), dummy.reset()
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(30):
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        actions = rng.integers(0, ours.action_space.n, size=3)
        obs_a, rew_a, done_a, info_a = ours.step(actions)
        obs_b, rew_b, done_b, info_b = dummy.step(actions)
        np.testing.assert_array_equal(done_a, done_b)
        np.testing.assert_allclose(rew_a, rew_b, atol=1e-5)
        for i in np.flatnonzero(done_a):
            ended += 1
            assert info_a[i]["score"] == pytest.approx(info_b[i]["score"])
            assert info_a[i]["completion"] == info_b[i]["completion"]
            assert info_a[i]["TimeLimit.truncated"] is False
            for key in obs_a:
                np.testing.assert_array_equal(
                    info_a[i]["terminal_observation"][key], info_b[i]["terminal_observation"][key]
                )
    assert ended >= 3
    assert obs_a["input_ids"].dtype == np.int64 and rew_a.dtype == np.float32


def rollout_observations(n_envs=3, steps=20, seed=0):
    """Observations of a seeded random rollout through the bridge, with same-step resets in it."""
    env = TextgymVecEnv("textgym/Copy-v1", num_envs=n_envs)
    env.seed(seed)
    obs, observations = env.reset(), []
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        observations.append(obs)
        obs, _, dones, _ = env.step(rng.integers(3, env.action_space.n, size=n_envs))
    return observations


def as_tensors(obs):
    return {k: torch.as_tensor(v).float() for k, v in obs.items()}  # as SB3's buffer hands them over


def test_the_rollout_kv_cache_gives_the_plain_outputs(model_dir):
    agent = PPO(LMActorCriticPolicy, make_env(), policy_kwargs={"model": model_dir}, n_steps=8, batch_size=8)
    policy = agent.policy
    observations = rollout_observations()
    for i, obs in enumerate(observations):
        if i == 10:  # an optimizer step in the middle: the cache must not serve the old weights
            for param in policy.parameters():
                param.grad = torch.randn_like(param)
            torch.optim.SGD(policy.parameters(), lr=0.1).step()
        obs = as_tensors(obs)
        with torch.no_grad():
            cached = policy.rollout_cache(obs["input_ids"].long(), obs["attention_mask"].long())
            if i == 5:  # the same observation again (SB3's value of the last obs, then the next rollout)
                cached = policy.rollout_cache(obs["input_ids"].long(), obs["attention_mask"].long())
            plain = policy.lm_policy.next_token(obs["input_ids"].long(), obs["attention_mask"].long())
        torch.testing.assert_close(cached[0], plain[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cached[1], plain[1], atol=1e-5, rtol=1e-4)
    assert policy.rollout_cache.lm is not None  # the cached path really ran


def test_whole_episode_minibatches_give_the_per_step_losses(model_dir):
    env = TextgymVecEnv("textgym/Copy-v1", num_envs=2, kl_coef=0.1)
    agent = PPO(
        LMActorCriticPolicy, env, policy_kwargs={"model": model_dir},
        rollout_buffer_class=LMRolloutBuffer, n_steps=20, batch_size=10, seed=0,
    )  # fmt: skip
    callback = TextgymCallback()
    agent._setup_learn(40, callback)
    callback.init_callback(agent)
    callback.on_training_start(locals(), globals())
    agent.collect_rollouts(agent.env, callback, agent.rollout_buffer, n_rollout_steps=20)
    buffer = agent.rollout_buffer
    batches = list(buffer.get(10))
    assert sum(len(b.actions) for b in batches) == 40  # every step once per epoch
    for batch in batches:
        grouped = batch.observations
        assert len(grouped["input_ids"]) == int(grouped["segment"].max()) + 1 < len(grouped["segment"])
    segments = buffer._segments()
    assert sum(map(len, segments)) == 40 and max(map(len, segments)) > 1  # whole episodes (some of 1 step)
    for chunk in (segments[:2], segments[2:]):
        batch = buffer._segment_samples(chunk)
        actions = batch.actions.long().flatten()
        values, log_prob, entropy = agent.policy.evaluate_actions(batch.observations, actions)
        steps = np.concatenate(chunk)  # the same steps, one observation each, as SB3 hands them over
        per_step = {
            k: torch.as_tensor(buffer.observations[k][steps]).float() for k in ("input_ids", "attention_mask")
        }
        values2, log_prob2, entropy2 = agent.policy.evaluate_actions(per_step, actions)
        torch.testing.assert_close(values, values2, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(log_prob, log_prob2, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(entropy, entropy2, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(log_prob, batch.old_log_prob, atol=1e-4, rtol=1e-4)  # first ratio is 1
        torch.testing.assert_close(values[:, 0], batch.old_values, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------------- MaskablePPO
class RecordMasks(BaseCallback):
    def _on_training_start(self):
        self.steps = []

    def _on_step(self):
        obs = {k: v.clone() for k, v in self.locals["obs_tensor"].items()}
        masks = np.asarray(self.locals["action_masks"]).copy()
        log_probs = self.locals["log_probs"].numpy().copy()
        self.steps.append((obs, masks, self.locals["actions"].copy(), log_probs))
        return True

    def _on_rollout_end(self):
        self.lm = copy.deepcopy(self.model.policy.lm_policy.lm)  # the weights that sampled the rollout


def test_maskable_ppo_masks_with_the_reference_top_k_and_stores_indices(model_dir):
    k, beta = 3, 0.2
    env = TextgymVecEnv("textgym/Copy-v1", num_envs=2, kl_coef=beta, mask_top_k=k)
    agent = MaskablePPO(
        MaskableLMActorCriticPolicy, env, policy_kwargs={"model": model_dir},
        rollout_buffer_class=MaskableLMRolloutBuffer, n_steps=10, batch_size=10, n_epochs=1, seed=0,
        **LM_DEFAULTS,
    )  # fmt: skip
    record = RecordMasks()
    agent.learn(20, callback=[TextgymCallback(), record])
    buffer = agent.rollout_buffer
    assert buffer.allowed.shape == (20, k) and not hasattr(buffer, "action_masks")  # k indices, not V floats
    lm, ref = record.lm, env.envs.ref_model.model
    for obs, masks, actions, log_probs in record.steps:
        for e in range(2):
            ids, mask = obs["input_ids"][e].long().numpy(), obs["attention_mask"][e].long().numpy()
            real = torch.as_tensor(ids[mask == 1])[None]
            with torch.no_grad():
                ref_logits = ref(real).logits[0, -1].float()
                logits = lm(real).logits[0, -1].float()
            assert set(np.flatnonzero(masks[e])) == set(ref_logits.topk(k).indices.tolist())
            assert masks[e][actions[e]]  # sampled inside the mask
            masked = torch.log_softmax(logits.masked_fill(~torch.as_tensor(masks[e]), -torch.inf), -1)
            assert log_probs[e] == pytest.approx(float(masked[actions[e]]), abs=1e-4)  # the masked log-prob
    # the masks a minibatch rebuilds from the stored indices are the ones the rollout sampled under
    stored = {tuple(s) for s in buffer.allowed.reshape(-1, k).tolist()}
    sampled = {tuple(np.flatnonzero(m[e])) for _, m, *_ in record.steps for e in range(2)}
    assert {tuple(sorted(s)) for s in stored} == sampled
    batch = next(buffer.get(10))
    assert batch.action_masks.shape == (len(batch.actions), env.action_space.n)
    assert (batch.action_masks.sum(-1) == k).all()
