"""Same seeded episodes and actions, same reward: every way into a textgym env pays the same score and KL.

Our agents (the native vector env, log-probs announced), a hand-written agent on the single env (as in
``examples/custom_agent.py``), the SB3 adapter (its VecEnv, then its rollout buffer completing the KL) and
the TorchRL adapter (its wrapped env, log-probs announced by a transform) must all end up with
``score - beta * (log pi - log pi_ref)`` on the same tokens.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from conftest import sharpen
from gymnasium.vector import AutoresetMode

import textgym  # noqa: F401
from textgym.agents.sb3 import LMRolloutBuffer, TextgymVecEnv
from textgym.agents.torchrl import make_env as torchrl_env

N, STEPS, BETA, SEED = 2, 24, 0.1, 11


def scripted(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and announced log-probs, ``(STEPS, N)`` each, fixed by a seed."""
    generator = torch.Generator().manual_seed(0)
    actions = torch.randint(3, vocab, (STEPS, N), generator=generator)  # no EOS: episodes of full length
    return actions, -torch.rand(STEPS, N, generator=generator) * 3


def test_every_door_pays_the_same_reward(copy_bundle):
    kwargs = {"model": sharpen(copy_bundle), "kl_coef": BETA}
    vocab = copy_bundle.vocab_size
    actions, logprobs = scripted(vocab)

    # our agents' door: the native vector env, log-probs announced
    native = gym.make_vec(
        "textgym/Copy-v1", num_envs=N, vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.DISABLED, **kwargs,
    )  # fmt: skip
    native.reset(seed=SEED)
    expected, scores = torch.zeros(STEPS, N), torch.zeros(STEPS, N)
    for t in range(STEPS):
        native.unwrapped.set_action_logprobs(logprobs[t])
        _, reward, terminated, _, info = native.step(actions[t])
        expected[t] = reward
        if "score" in info:
            scores[t] = torch.where(info["_score"], info["score"], 0.0)
        if terminated.any():
            native.reset(options={"reset_mask": terminated})
    assert (scores != 0).any() and (expected != scores).all()  # scores paid, and KL on every token

    # a hand-written agent on the single env (examples/custom_agent.py), env i seeded SEED + i
    for i in range(N):
        env = gym.make("textgym/Copy-v1", **kwargs)
        env.reset(seed=SEED + i)
        for t in range(STEPS):
            env.unwrapped.set_action_logprobs(float(logprobs[t, i]))
            _, reward, terminated, _, _ = env.step(int(actions[t, i]))
            assert abs(reward - float(expected[t, i])) < 1e-5  # batch 1 vs N: float rounding only
            if terminated:
                env.reset()

    # SB3: the VecEnv pays beta * log pi_ref, the rollout buffer completes it with SB3's log-prob
    venv = TextgymVecEnv("textgym/Copy-v1", num_envs=N, **kwargs)
    venv.seed(SEED)
    obs = venv.reset()
    buffer = LMRolloutBuffer(STEPS, venv.observation_space, venv.action_space, n_envs=N)
    buffer.kl_coef = venv.get_attr("kl_coef")[0]
    for t in range(STEPS):
        next_obs, reward, dones, _ = venv.step(actions[t].numpy())
        buffer.add(obs, actions[t].numpy(), reward, np.zeros(N), torch.zeros(N), logprobs[t])
        obs = next_obs
    np.testing.assert_allclose(buffer.rewards, expected.numpy(), atol=1e-5)

    # TorchRL: the wrapped vector env, the actor's log-prob announced by a transform
    env = torchrl_env("textgym/Copy-v1", num_envs=N, **kwargs)
    td = env.reset(seed=SEED)
    for t in range(STEPS):
        td["action"], td["action_log_prob"] = actions[t], logprobs[t]
        td, td_next = env.step_and_maybe_reset(td)
        torch.testing.assert_close(td["next", "reward"][:, 0], expected[t], rtol=0, atol=1e-6)
        td = td_next
