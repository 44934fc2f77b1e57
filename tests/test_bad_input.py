"""Bad input gets a clear error that names the bad value and what was expected, and loses nothing."""

from __future__ import annotations

import copy
import functools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import textgym  # noqa: F401
from textgym.envs import make_vector_env
from textgym.models import ModelBundle
from textgym.rewards import RewardError
from textgym.tasks import CopyEnv


@pytest.fixture
def env(copy_bundle):
    env = CopyEnv(model=copy_bundle, kl_coef=0.1)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("action", [-1, 10_000])
def test_out_of_range_action(env, action):
    with pytest.raises(ValueError, match=rf"action {action} .*\[0, {env.action_space.n}\)"):
        env.step(action)


@pytest.mark.parametrize("action", [1.0, np.float32(2), "a", True, [1, 2], torch.tensor(1.5)])
def test_wrong_type_or_dtype(env, action):
    with pytest.raises(TypeError, match="integer token id"):
        env.step(action)


def test_integer_forms_are_accepted(env):
    for action in (1, np.int64(1), np.array(1), torch.tensor(1)):
        env.reset(seed=0)
        env.step(action)


def test_step_after_the_end(env, copy_bundle):
    env.step(copy_bundle.eos_token_ids[0])
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(1)


def test_step_before_reset(copy_bundle):
    with pytest.raises(RuntimeError, match="call reset"):
        CopyEnv(model=copy_bundle).step(1)
    with pytest.raises(RuntimeError, match="call reset"):
        make_vector_env(CopyEnv, num_envs=2, model=copy_bundle).step([1, 1])


def test_prompt_longer_than_its_budget(copy_bundle):
    env = CopyEnv(model=copy_bundle, prompt_budget=3)
    with pytest.warns(UserWarning, match="exceeds prompt_budget=3"):
        obs, _ = env.reset(seed=0)
    assert obs["attention_mask"][:3].sum() == 3
    strict = CopyEnv(model=copy_bundle, prompt_budget=3, prompt_overflow="error")
    with pytest.raises(ValueError, match=r"exceeds prompt_budget=3.*Copy:"):
        strict.reset(seed=0)
    with pytest.raises(ValueError, match="prompt_overflow must be"):
        CopyEnv(model=copy_bundle, prompt_overflow="drop")


def test_tokenizer_without_pad_token(copy_bundle):
    tokenizer = copy.deepcopy(copy_bundle.tokenizer)
    tokenizer.pad_token = None
    bundle = ModelBundle(copy_bundle.model, tokenizer, "no-pad")
    env = CopyEnv(model=bundle)
    obs, _ = env.reset(seed=0)
    pad_columns = obs["input_ids"][obs["attention_mask"] == 0]
    assert (pad_columns == bundle.eos_token_ids[0]).all()  # padded with EOS, told apart by the mask
    assert env.observation_space.contains(obs)


def test_vector_action_errors(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 actions"):
        envs.step(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="integer token ids"):
        envs.step(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"action 99 \(env 1\)"):
        envs.step(torch.tensor([1, 99]))


def test_device_mismatch(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="on meta but the environment is on cpu"):
        envs.step(torch.tensor([1, 2], device="meta"))
    with pytest.raises(ValueError, match="is on cpu but the environment was asked for device=meta"):
        CopyEnv(model=copy_bundle, device="meta")


def nan_reward(prompts, completions, **kwargs):
    return [math.nan] * len(prompts)


def short_reward(prompts, completions, **kwargs):
    return [1.0] * (len(prompts) + 1)


def raising_reward(prompts, completions, **kwargs):
    raise KeyError("oops")


@pytest.mark.parametrize(
    ("reward_fn", "message"),
    [
        (nan_reward, r"nan_reward.*index 0"),
        (short_reward, r"short_reward returned 2 values for a batch of 1"),
        (raising_reward, "raising_reward"),
    ],
)
def test_bad_reward_is_named_and_the_step_can_be_retried(copy_bundle, reward_fn, message):
    calls = []

    @functools.wraps(reward_fn)  # keeps its name, which the error must show
    def fails_once(prompts, completions, **columns):  # the bad reward, fixed after its first call
        calls.append(completions)
        return reward_fn(prompts, completions, **columns) if len(calls) == 1 else [0.5] * len(completions)

    env = CopyEnv(model=copy_bundle, reward_fn=fails_once, kl_coef=0.1)
    obs, _ = env.reset(seed=0)
    eos = copy_bundle.eos_token_ids[0]
    with pytest.raises(RewardError, match=message):
        env.step(eos)
    # Nothing was committed: the same step goes through once the reward works, on the same observation.
    obs_after, reward, terminated, _, info = env.step(eos)
    assert terminated and info["score"] == 0.5 and info["completion_length"] == 1
    assert calls[0] == calls[1] == [""]
    P = env.prompt_budget
    assert (obs_after["input_ids"][:P] == obs["input_ids"][:P]).all()
    assert obs_after["attention_mask"][P:].sum() == 1


def test_reward_by_import_string(copy_bundle):
    env = gym.make("textgym/Copy-v1", model=copy_bundle, reward_fn="textgym.rewards:sequence_match")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(copy_bundle.eos_token_ids[0])
    assert terminated and info["score"] == 0.0


def test_unknown_keyword_is_named(copy_bundle):
    with pytest.raises(TypeError, match="max_lenght"):
        CopyEnv(model=copy_bundle, max_lenght=5)


def test_bad_action_logprobs(env):
    with pytest.raises(ValueError, match="finite and <= 0"):
        env.set_action_logprobs(0.5)
    with pytest.raises(ValueError, match="finite and <= 0"):
        env.set_action_logprobs(float("nan"))


def test_example_index_outside_the_pool_or_without_one(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle)
    size = len(envs.pool)
    with pytest.raises(ValueError, match=rf"example_index {size} is outside the train pool .*\[0, {size}\)"):
        envs.reset(seed=0, options={"example_index": [0, size]})
    with pytest.raises(ValueError, match="example_index must hold 2 indices"):
        envs.reset(seed=0, options={"example_index": [0]})
    env = gym.make("textgym/Arithmetic-v0", model=copy_bundle, kl_coef=0.0)
    with pytest.raises(NotImplementedError, match="unbounded space"):
        env.reset(seed=0, options={"example_index": 0})
