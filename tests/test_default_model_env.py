"""The real default model (SmolLM2-135M-Instruct) through gym.make: chat template, KL figures checked
against an independent forward pass."""

from __future__ import annotations

import gymnasium as gym
import pytest
from conftest import independent_ref_logprobs

import textgym  # noqa: F401

pytestmark = pytest.mark.slow


def test_default_model_episode_with_exact_kl():
    env = gym.make("textgym/Copy-v1", model="smollm2", kl_coef=0.05)
    obs, info = env.reset(seed=0)
    face = env.unwrapped
    assert env.action_space.n == 49152
    assert "<|im_start|>assistant" in face.tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    prompt = [
        int(i)
        for i in obs["input_ids"][: face.prompt_budget][obs["attention_mask"][: face.prompt_budget] == 1]
    ]
    target = face.examples[0]["target"]
    answer = face.tokenizer(target, add_special_tokens=False)["input_ids"]
    actions = [*answer, face.eos_token_ids[0]]
    logprobs = [-1.0] * len(actions)
    infos = []
    for action, logprob in zip(actions, logprobs, strict=True):
        env.unwrapped.set_action_logprobs(logprob)
        obs, reward, terminated, truncated, info = env.step(action)
        infos.append((reward, info))
    assert terminated and not truncated
    expected = independent_ref_logprobs(face.model.model, prompt, actions)
    for (reward, info), ref, logprob in zip(infos, expected.tolist(), logprobs, strict=True):
        assert info["ref_logprob"] == pytest.approx(ref, abs=2e-4)
        assert info["kl"] == pytest.approx(logprob - ref, abs=2e-4)
        assert reward == pytest.approx(-0.05 * (logprob - ref) + info.get("score", 0.0), abs=1e-4)
    final = infos[-1][1]
    assert final["score"] == 1.0 and final["completion"] == target and final["stopped"] is True


def test_sentiment_through_gym_make_with_real_sampled_episodes():
    """Real episodes on textgym/Sentiment-v0: the default model samples each token (KV-free, from the
    observation), announces its log-prob, and the env's score and KL fields are checked."""
    import torch

    from textgym.rewards import vader_sentiment

    env = gym.make("textgym/Sentiment-v0", generation_budget=8)
    model = env.unwrapped.model.model
    generator = torch.Generator().manual_seed(0)
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        kls, terminated = [], False
        while not terminated:
            ids = torch.as_tensor(obs["input_ids"][obs["attention_mask"] == 1])[None]
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
            action = int(torch.multinomial(logp.exp(), 1, generator=generator))
            env.unwrapped.set_action_logprobs(float(logp[action]))
            obs, reward, terminated, truncated, step_info = env.step(action)
            # The policy is the reference: per-token KL is zero up to float noise between two passes.
            assert step_info["kl"] == pytest.approx(float(logp[action]) - step_info["ref_logprob"], abs=1e-6)
            assert abs(step_info["kl"]) < 1e-3
            kls.append(step_info["kl"])
        assert step_info["score"] == pytest.approx(
            vader_sentiment([info["prompt"]], [step_info["completion"]])[0]
        )
        assert step_info["episode_kl"] == pytest.approx(sum(kls), abs=1e-4)
        assert step_info["kl_coef"] == pytest.approx(0.05)
        assert 1 <= step_info["completion_length"] <= 8
