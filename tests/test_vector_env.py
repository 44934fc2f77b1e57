"""The native vector env: Gymnasium's seeding rules, its autoreset modes, and parity with the single env."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from textgym.envs import make_vector_env
from textgym.tasks import CopyEnv


def test_env_i_draws_what_a_single_env_seeded_s_plus_i_draws(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=3, model=copy_bundle)
    single = CopyEnv(model=copy_bundle)
    obs, infos = envs.reset(seed=10)
    for i in range(3):
        single_obs, single_info = single.reset(seed=10 + i)
        np.testing.assert_array_equal(obs["input_ids"][i].numpy(), single_obs["input_ids"])
        assert infos["prompt"][i] == single_info["prompt"]


def test_same_seed_same_episodes_different_seed_different(copy_bundle):
    def prompts(seed):
        envs = make_vector_env(CopyEnv, num_envs=4, model=copy_bundle)
        _, infos = envs.reset(seed=seed)
        return list(infos["prompt"])

    assert prompts(0) == prompts(0)
    assert prompts(0) != prompts(1)


def test_list_of_seeds(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle)
    a, _ = envs.reset(seed=[5, 6])
    b, _ = envs.reset(seed=5)
    torch.testing.assert_close(a["input_ids"], b["input_ids"])
    with pytest.raises(ValueError, match="expected 2 seeds"):
        envs.reset(seed=[1, 2, 3])


def test_next_step_autoreset(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle)
    eos = copy_bundle.eos_token_ids[0]
    envs.reset(seed=0)
    _, reward, terminated, _, infos = envs.step(np.array([eos, 5]))
    assert terminated.tolist() == [True, False]
    assert infos["_score"].tolist() == [True, False]
    first_prompt = envs.examples[0]["prompt"]
    obs, reward, terminated, _, infos = envs.step(np.array([5, 5]))  # env 0's action is ignored: it resets
    assert reward[0] == 0.0 and not terminated[0]
    assert int(obs["attention_mask"][0, envs.prompt_budget :].sum()) == 0  # a fresh episode
    assert int(obs["attention_mask"][1, envs.prompt_budget :].sum()) == 2
    assert not infos["_non_score_reward"][0] and infos["_non_score_reward"][1]
    assert isinstance(first_prompt, str)


def test_disabled_autoreset_freezes_finished_envs_until_reset_mask(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle, autoreset_mode=AutoresetMode.DISABLED)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    eos = copy_bundle.eos_token_ids[0]
    obs0, _ = envs.reset(seed=0)
    obs, _, _, _, _ = envs.step(np.array([eos, 5]))
    frozen = obs["input_ids"][0].clone()
    obs, reward, terminated, _, _ = envs.step(np.array([5, 5]))
    torch.testing.assert_close(obs["input_ids"][0], frozen)  # env 0 sits out
    assert reward[0] == 0.0 and not terminated[0]
    envs.step(np.array([5, eos]))
    with pytest.raises(RuntimeError, match="every episode has ended"):
        envs.step(np.array([5, 5]))
    obs, infos = envs.reset(options={"reset_mask": np.array([True, False])})
    assert infos["_prompt"].tolist() == [True, False]
    ended = obs["input_ids"][1].clone()
    obs, reward, terminated, _, _ = envs.step(np.array([eos, 5]))
    assert terminated.tolist() == [True, False]  # env 1 still sits out
    assert reward[1] == 0.0 and torch.equal(obs["input_ids"][1], ended)


def test_render_modes(copy_bundle, capsys):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle, render_mode="ansi")
    _, infos = envs.reset(seed=0)
    texts = envs.render()
    assert len(texts) == 2 and infos["prompt"][0] in texts[0]
    env = CopyEnv(model=copy_bundle, render_mode="human")
    _, info = env.reset(seed=0)
    assert info["prompt"] in capsys.readouterr().out


def test_numpy_backend(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=2, model=copy_bundle, kl_coef=0.1, array_backend="numpy")
    obs, _ = envs.reset(seed=0)
    assert isinstance(obs["input_ids"], np.ndarray) and obs["input_ids"].dtype == np.int64
    assert envs.observation_space.contains(obs)
    obs, reward, terminated, truncated, infos = envs.step(np.array([5, copy_bundle.eos_token_ids[0]]))
    assert reward.dtype == np.float32 and terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    assert isinstance(infos["ref_logprob"], np.ndarray) and infos["_score"].tolist() == [False, True]
    with pytest.raises(ValueError, match="array_backend"):
        make_vector_env(CopyEnv, num_envs=2, model=copy_bundle, array_backend="jax")


def test_ids_with_module_prefix_work_from_id_only_libraries():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("textgym:textgym/Copy-v1", n_envs=2, seed=0)
    obs = venv.reset()
    assert obs["input_ids"].shape == (2, venv.observation_space["input_ids"].shape[0])


def test_unsupported_render_mode_is_refused_at_render(copy_bundle):
    env = CopyEnv(model=copy_bundle, render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.raises(
        ValueError, match=r"'rgb_array' is not supported: expected one of \['ansi', 'human'\]"
    ):
        env.render()


def test_example_index_starts_each_env_on_that_example_of_the_pool(copy_bundle):
    envs = make_vector_env(CopyEnv, num_envs=3, model=copy_bundle)
    pool = envs.pool
    assert len(pool) == len({ex["prompt"] for ex in pool}) > 3000  # every train string of 2-4 symbols, once
    _, infos = envs.reset(seed=0, options={"example_index": [5, 0, len(pool) - 1]})
    assert list(infos["prompt"]) == [pool[5]["prompt"], pool[0]["prompt"], pool[-1]["prompt"]]
    assert envs.examples == [pool[5], pool[0], pool[-1]]  # the reward columns come with the prompt
    single = CopyEnv(model=copy_bundle)
    _, info = single.reset(seed=0, options={"example_index": 7})
    assert info["prompt"] == pool[7]["prompt"]
    # A partial reset reads only the reset envs' indices.
    envs.reset(options={"reset_mask": np.array([False, True, False]), "example_index": [-9, 9, -9]})
    assert envs.examples == [pool[5], pool[9], pool[-1]]
