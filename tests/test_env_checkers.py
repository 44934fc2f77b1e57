"""Every registered textgym id passes Gymnasium's and SB3's env checkers; a new env cannot skip this."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym
from textgym.envs import TextVectorEnv

TEXTGYM_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("textgym/"))


def test_registry_is_not_empty():
    assert len(TEXTGYM_IDS) >= 3


@pytest.mark.parametrize("env_id", TEXTGYM_IDS)
@pytest.mark.parametrize("kwargs", [{}, {"kl_coef": 0.1}, {"kl_coef": 0.1, "ref_logprobs": "episode_end"}])
def test_gymnasium_check_env(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings are failures here
        gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", TEXTGYM_IDS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id, kl_coef=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env.unwrapped, warn=True, skip_render_check=True)


@pytest.mark.parametrize("env_id", TEXTGYM_IDS)
def test_make_vec_uses_the_native_vector_env(env_id):
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(envs, TextVectorEnv) and envs.num_envs == 3
    assert envs.env_class is gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    obs, _ = envs.reset(seed=0)
    assert obs["input_ids"].shape == (3, *envs.single_observation_space["input_ids"].shape)
    info = textgym.task_info(env_id)  # the metadata tooling lists, read without building the env
    assert (info.prompt_budget, info.generation_budget) == (envs.prompt_budget, envs.generation_budget)
    assert info.description and info.default_model in ("tiny", "smollm2") and info.name == envs.task.name
    low, high = info.score_range
    assert low < high and (info.optimal_score is None or low < info.optimal_score <= high)


@pytest.mark.parametrize("env_id", TEXTGYM_IDS)
def test_env_class_docstring_is_a_manual(env_id):
    doc = gym.spec(env_id).entry_point
    env_cls = gym.envs.registration.load_env_creator(doc)
    for section in (
        "## Description",
        "Observation",
        "Action Space",
        "## Rewards",
        "## Episode End",
        "## Arguments",
        "gym.make(",
        "## Version History",
    ):
        assert section in env_cls.__doc__, f"{env_id}: manual lacks {section!r}"
