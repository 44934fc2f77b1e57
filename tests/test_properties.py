"""Property-based: random action sequences keep observations in their spaces and lengths and masks
consistent, in the single and the vector env."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textgym.envs import make_vector_env
from textgym.tasks import CopyEnv


def check_layout(ids: np.ndarray, mask: np.ndarray, prompt_budget: int, generated: int, pad: int) -> None:
    prompt_mask, gen_mask = mask[:prompt_budget], mask[prompt_budget:]
    n_prompt = int(prompt_mask.sum())
    assert n_prompt >= 1 and prompt_mask[prompt_budget - n_prompt :].all()  # left padded, contiguous
    assert gen_mask[:generated].all() and not gen_mask[generated:].any()  # right padded, contiguous
    assert (ids[mask == 0] == pad).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), actions=st.lists(st.integers(0, 15), min_size=1, max_size=12))
def test_single_env_random_actions(copy_bundle, seed, actions):
    env = CopyEnv(model=copy_bundle, kl_coef=0.05)
    obs, _ = env.reset(seed=seed)
    P = env.prompt_budget
    generated = 0
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action % env.action_space.n)
        generated += 1
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward) and truncated is False
        check_layout(obs["input_ids"], obs["attention_mask"], P, generated, copy_bundle.pad_token_id)
        if terminated:
            assert info["completion_length"] == generated <= env.generation_budget
            obs, _ = env.reset(seed=seed)
            generated = 0


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    steps=st.lists(st.lists(st.integers(0, 15), min_size=3, max_size=3), min_size=1, max_size=15),
)
def test_vector_env_random_actions(copy_bundle, seed, steps):
    envs = make_vector_env(CopyEnv, num_envs=3, model=copy_bundle, kl_coef=0.05)
    obs, _ = envs.reset(seed=seed)
    P = envs.prompt_budget
    generated = np.zeros(3, dtype=int)
    restarting = np.zeros(3, dtype=bool)
    for actions in steps:
        obs, reward, terminated, truncated, infos = envs.step(
            torch.tensor(actions) % envs.single_action_space.n
        )
        generated = np.where(restarting, 0, generated + 1)
        numpy_obs = {k: v.numpy() for k, v in obs.items()}
        assert envs.observation_space.contains(numpy_obs)
        assert torch.isfinite(reward).all() and not truncated.any()
        for i in range(3):
            check_layout(
                numpy_obs["input_ids"][i],
                numpy_obs["attention_mask"][i],
                P,
                generated[i],
                copy_bundle.pad_token_id,
            )
        assert (infos.get("_score", torch.zeros(3, dtype=torch.bool)) == terminated).all()
        restarting = terminated.numpy()
