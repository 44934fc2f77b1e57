"""The real default model (SmolLM2-135M-Instruct) through gym.make: chat template, KL figures checked
against an independent forward pass."""

from __future__ import annotations

import gymnasium as gym
import pytest
from conftest import independent_ref_logprobs

import textgym  # noqa: F401

pytestmark = pytest.mark.slow


def test_default_model_episode_with_exact_kl():
    env = gym.make("textgym/Copy-v0", model="smollm2", kl_coef=0.05)
    obs, info = env.reset(seed=0)
    batch = env.unwrapped.batch
    assert env.action_space.n == 49152 and batch.use_chat_template
    assert "<|im_start|>assistant" in batch.tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    prompt = [
        int(i)
        for i in obs["input_ids"][: batch.prompt_budget][obs["attention_mask"][: batch.prompt_budget] == 1]
    ]
    target = batch.examples[0]["target"]
    answer = batch.tokenizer(target, add_special_tokens=False)["input_ids"]
    actions = [*answer, batch.policy.eos_token_ids[0]]
    logprobs = [-1.0] * len(actions)
    infos = []
    for action, logprob in zip(actions, logprobs, strict=True):
        env.unwrapped.set_action_logprobs(logprob)
        obs, reward, terminated, truncated, info = env.step(action)
        infos.append((reward, info))
    assert terminated and not truncated
    expected = independent_ref_logprobs(batch.policy.model, prompt, actions)
    for (reward, info), ref, logprob in zip(infos, expected.tolist(), logprobs, strict=True):
        assert info["ref_logprob"] == pytest.approx(ref, abs=2e-4)
        assert info["kl"] == pytest.approx(logprob - ref, abs=2e-4)
        assert reward == pytest.approx(-0.05 * (logprob - ref) + info.get("score", 0.0), abs=1e-4)
    final = infos[-1][1]
    assert final["score"] == 1.0 and final["completion"] == target and final["stopped"] is True
