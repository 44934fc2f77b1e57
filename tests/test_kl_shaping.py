"""Reference log-probs, shaped rewards and the score position, checked against an independent
computation from the model's logits (one unpadded forward pass, no cache)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import independent_ref_logprobs
from gymnasium.vector import AutoresetMode

import textgym  # noqa: F401  (registers the envs)
from textgym.envs import make_vector_env
from textgym.kl import AdaptiveKLController, kl_k3
from textgym.tasks import CopyEnv

BETA = 0.1


def prompt_ids(obs: dict[str, np.ndarray], prompt_budget: int) -> list[int]:
    ids, mask = obs["input_ids"][:prompt_budget], obs["attention_mask"][:prompt_budget]
    return [int(i) for i in ids[mask == 1]]


def run_episode(env: CopyEnv, actions: list[int], logprobs: list[float] | None = None):
    steps = []
    for t, action in enumerate(actions):
        if logprobs is not None:
            env.set_action_logprobs(logprobs[t])
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((reward, terminated, truncated, info))
        if terminated:
            break
    return steps


@pytest.mark.parametrize("announce", [False, True])
def test_per_step_ref_logprobs_and_shaped_reward_match_the_logits(sharp_bundle, announce):
    env = CopyEnv(model=sharp_bundle, kl_coef=BETA)
    eos = sharp_bundle.eos_token_ids[0]
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        prompt = prompt_ids(obs, env.prompt_budget)
        # Non-EOS tokens up to the budget: a budget ending.
        actions = [int(a) for a in rng.choice([a for a in range(env.action_space.n) if a != eos], 10)]
        policy_lp = [float(-rng.uniform(0.1, 3.0)) for _ in actions] if announce else None
        steps = run_episode(env, actions, policy_lp)
        taken = actions[: len(steps)]
        assert len(steps) == env.generation_budget
        expected_ref = independent_ref_logprobs(sharp_bundle.model, prompt, taken)
        for t, (reward, terminated, truncated, info) in enumerate(steps):
            assert info["ref_logprob"] == pytest.approx(float(expected_ref[t]), abs=1e-4)
            if announce:
                shaped = -BETA * (policy_lp[t] - float(expected_ref[t]))
                assert info["kl"] == pytest.approx(policy_lp[t] - float(expected_ref[t]), abs=1e-4)
            else:
                shaped = BETA * float(expected_ref[t])
            assert info["non_score_reward"] == pytest.approx(shaped, abs=1e-5)
            last = t == len(steps) - 1
            assert terminated is last and truncated is False
            assert ("score" in info) is last  # the score is paid on the final step only
            assert reward == pytest.approx(shaped + (info["score"] if last else 0.0), abs=1e-5)
        assert steps[-1][3]["stopped"] is False  # a budget ending
        final = steps[-1][3]
        assert final["kl_coef"] == pytest.approx(BETA)
        if announce:
            k1 = np.array(policy_lp[: len(steps)]) - expected_ref.numpy()
            assert final["episode_kl"] == pytest.approx(k1.sum(), abs=1e-3)
            assert final["episode_kl_k3"] == pytest.approx(
                float(kl_k3(np.array(policy_lp[: len(steps)]), expected_ref.numpy()).sum()), abs=1e-3
            )
            assert final["episode_kl_k3"] >= 0.0
        else:
            assert "episode_kl" not in final


def test_eos_ending_pays_the_score_on_the_eos_step(copy_bundle):
    env = CopyEnv(model=copy_bundle, kl_coef=0.0)
    obs, info = env.reset(seed=1)
    target = env.examples[0]["target"].split()
    answer = copy_bundle.tokenizer(" ".join(target), add_special_tokens=False)["input_ids"]
    assert len(answer) == len(target)  # one token per symbol
    steps = run_episode(env, [*answer, copy_bundle.eos_token_ids[0]])
    assert len(steps) == len(target) + 1
    for reward, terminated, _, info in steps[:-1]:
        assert reward == 0.0 and not terminated and "score" not in info
    reward, terminated, _, info = steps[-1]
    assert terminated and info["stopped"] is True
    assert info["score"] == 1.0 and reward == 1.0
    assert info["completion"] == " ".join(target)
    assert info["completion_length"] == len(target) + 1


def test_deferred_reference_matches_per_step_delivery(sharp_bundle):
    per_step = CopyEnv(model=sharp_bundle, kl_coef=BETA)
    deferred = CopyEnv(model=sharp_bundle, kl_coef=BETA, ref_logprobs="episode_end")
    rng = np.random.default_rng(3)
    eos = sharp_bundle.eos_token_ids[0]
    for seed in range(3):
        per_step.reset(seed=seed)
        deferred.reset(seed=seed)
        actions = [int(a) for a in rng.integers(0, per_step.action_space.n, 10)]
        if eos in actions:
            actions = actions[: actions.index(eos) + 1]
        logprobs = [float(-rng.uniform(0.1, 3.0)) for _ in actions]
        a = run_episode(per_step, actions, logprobs)
        b = run_episode(deferred, actions, logprobs)
        assert len(a) == len(b)
        assert all(r == 0.0 for r, *_ in b[:-1])  # deferred: everything arrives on the final step
        total_a = sum(r for r, *_ in a)
        assert b[-1][0] == pytest.approx(total_a, abs=1e-4)
        info = b[-1][3]
        np.testing.assert_allclose(info["ref_logprobs"], [s[3]["ref_logprob"] for s in a], atol=1e-4)
        np.testing.assert_allclose(
            info["non_score_rewards"], [s[3]["non_score_reward"] for s in a], atol=1e-5
        )


def test_vector_env_ref_logprobs_survive_autoreset_and_uneven_prompts(sharp_bundle):
    """Envs that restart mid-batch get their prompt spliced into the shared KV cache; every env's
    reference log-probs must still equal the unpadded computation."""
    envs = make_vector_env(CopyEnv, num_envs=4, model=sharp_bundle, kl_coef=BETA, min_length=1, max_length=4)
    obs, _ = envs.reset(seed=0)
    P = envs.prompt_budget
    eos = sharp_bundle.eos_token_ids[0]
    rng = np.random.default_rng(0)
    current = [prompt_ids({k: v[i].numpy() for k, v in obs.items()}, P) for i in range(4)]
    taken: list[list[int]] = [[] for _ in range(4)]
    seen: list[list[float]] = [[] for _ in range(4)]
    checked = 0
    restarting = np.zeros(4, dtype=bool)
    for _ in range(40):
        # EOS often, so that envs end at different steps and restart out of step with the others.
        actions = np.where(rng.random(4) < 0.3, eos, rng.integers(0, envs.single_action_space.n, 4))
        obs, reward, terminated, truncated, infos = envs.step(actions)
        for i in range(4):
            if restarting[i]:
                assert not infos["_ref_logprob"][i] and reward[i] == 0.0
                current[i] = prompt_ids({k: v[i].numpy() for k, v in obs.items()}, P)
                taken[i], seen[i] = [], []
                continue
            taken[i].append(int(actions[i]))
            seen[i].append(float(infos["ref_logprob"][i]))
            if terminated[i]:
                expected = independent_ref_logprobs(sharp_bundle.model, current[i], taken[i])
                np.testing.assert_allclose(seen[i], expected.numpy(), atol=1e-4)
                checked += 1
        restarting = terminated.numpy().copy()
    assert checked >= 8
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


def test_adaptive_controller_follows_ziegler():
    controller = AdaptiveKLController(value=0.2, target=6.0, horizon=10_000)
    controller.update(kl=12.0, n_steps=256)  # error clipped to +0.2
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 256 / 10_000))
    controller.update(kl=5.0, n_steps=100)
    assert controller.value == pytest.approx(
        0.2 * (1 + 0.2 * 256 / 10_000) * (1 + (5 / 6 - 1) * 100 / 10_000)
    )


def test_adaptive_kl_coef_moves_with_measured_kl(sharp_bundle):
    env = CopyEnv(model=sharp_bundle, kl_coef=BETA, kl_target=0.01, kl_horizon=10)
    env.reset(seed=0)
    before = env.kl_coef
    # Announced log-probs far above the reference: KL per sequence >> target, so beta must grow.
    run_episode(env, [1] * 10, [0.0] * 10)
    assert env.kl_coef > before


def test_kl_off_loads_no_reference(copy_bundle):
    env = gym.make("textgym/Copy-v1", model=copy_bundle, kl_coef=0.0)
    assert env.unwrapped.ref_model is None
    env.reset(seed=0)
    _, _, _, _, info = env.step(1)
    assert "ref_logprob" not in info and info["non_score_reward"] == 0.0


def test_vector_env_device_tensors(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle, kl_coef=BETA)
    obs, _ = envs.reset(seed=0)
    assert obs["input_ids"].dtype == torch.int64 and obs["input_ids"].device == envs.device
    envs.set_action_logprobs(torch.tensor([-1.0, -2.0]))
    _, reward, terminated, truncated, infos = envs.step(torch.tensor([1, 2]))
    assert reward.dtype == torch.float32 and terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert infos["_kl"].all()
    np.testing.assert_allclose(
        infos["kl"].numpy(), np.array([-1.0, -2.0]) - infos["ref_logprob"].numpy(), atol=1e-6
    )


def test_sampled_episodes_carry_what_the_env_paid_per_token_in_both_delivery_modes(sharp_bundle):
    from gymnasium.vector import AutoresetMode

    from textgym.rollout import sample_episodes

    runs = {}
    for timing in ("step", "episode_end"):
        envs = make_vector_env(
            CopyEnv,
            num_envs=4,
            model=sharp_bundle,
            kl_coef=BETA,
            ref_logprobs=timing,
            autoreset_mode=AutoresetMode.DISABLED,
        )
        runs[timing] = sample_episodes(envs, sharp_bundle.model, seed=0)
    step, deferred = runs["step"], runs["episode_end"]
    torch.testing.assert_close(step.tokens, deferred.tokens)
    mask = step.completion_mask
    shaping = -BETA * (step.logprobs - step.ref_logprobs) * mask  # (N, T) from the logits, independently
    last = torch.as_tensor(step.lengths) - 1
    shaping[torch.arange(4), last] += torch.as_tensor(step.scores)
    for episodes in (step, deferred):  # the score sits on the last token, the shaping on its own token
        torch.testing.assert_close(episodes.rewards, shaping, atol=1e-5, rtol=0)
        assert (episodes.rewards[mask == 0] == 0).all()
