"""Learning on the toy suite: from a fresh tiny model, each agent lifts the score towards the known optimum.

Pattern-v0's scores come in steps (1.0 solved, 0.75 one symbol short, 0.5 two short). Without KL shaping
(the toy tasks' default) both agents stall a symbol short on some seeds: the policy turns deterministic on
a wrong symbol, every episode then scores the same, and nothing samples the right symbol again. Measured
(300 iterations, mean training score of the last 20; a random policy scores about 0.07):

| agent | batch | kl_coef | seeds 0-7 |
| --- | --- | --- | --- |
| PPO, lr 3e-4 | 16 | 0 | 0.98, 0.75, 0.99, 0.98, 1.00, 0.99, 0.74, 0.57 (collapsed at the end) |
| PPO, lr 3e-4, ent_coef 0.01 | 16 | 0 | seeds 0, 1, 6, 7: 0.75, 0.74, 0.72, 0.99 |
| PPO, lr 3e-4, no advantage whitening | 16 | 0 | seeds 0, 1, 6, 7: 0.99, 0.75, 0.75, 1.00 |
| PPO, lr 3e-4 | 16 | 0.02 | 0.98, 0.99, 0.75, 0.96, 0.99, 0.98, 0.98, 0.99 |
| PPO, lr 3e-4 | 16 | 0.05 | 0.59, 0.69, 0.80, 0.51, 0.62, 0.59, 0.75, 0.80 (still rising: too slow) |
| PPO, lr 3e-4 | 32 | 0.02 | seeds 1, 2, 6, 7 (the stalled ones above): 0.99, 0.99, 0.99, 0.99 |
| REINFORCE (RLOO, 4 per prompt), lr 5e-4 | 16 | 0 | seeds 0-3: 0.71, 0.72, 0.89, 0.72 |
| REINFORCE, lr 2e-3 | 16 | 0 | seeds 0-3: 1.00, 0.75, 0.33, 0.75 |
| REINFORCE, lr 1e-3 | 16 | 0.02 | 0.96, 0.97, 0.98, 0.98, 0.95, 0.98, 0.74, 0.98 |
| REINFORCE, lr 1e-3 | 32 | 0.02 | 0.99, 0.99, 0.99, 0.99, 0.99, 0.96, 0.99, 0.99 |

The KL to the randomly initialised reference acts as an entropy floor over the 16-token vocabulary (an
entropy bonus of 0.01 did not), and 32 episodes per iteration sample a stalled position's right symbol
twice as often. REINFORCE's rows are RLOO over 4 episodes. Re-measured on 2026-12-07 in a fresh install
(same code; the runs came out different, so a package within pyproject's pins changed the numerics),
REINFORCE at lr 1e-3, batch 32, kl_coef 0.02 gave 0.83, 0.99, 0.99, 0.99, 0.95, 0.99, 0.99, 0.99 over
seeds 0-7 with RLOO over 4 (seed 0 stalled), and 0.99, 0.98, 0.99, 0.98, 0.99, 0.99, 0.98, 0.99 with RLOO
over 8 (kl_coef 0.05 instead: 0.84-0.89, still climbing). The tests run PPO's row and REINFORCE with RLOO
over 8, and ask every seed for 0.95 of the optimum.

PPO's rows are at GAE lambda 0.95, its default until 2026-12-07 and TRL's. At its default now, 1.0 (the
better one on Sentiment-v0), PPO's row gave 0.975, 0.994, 0.995, 0.989, 0.912, 0.995, 0.989, 0.994 over
seeds 0-7 (seed 4 in a dip it left by 325 iterations), and in a fresh install later that day seed 3 stood at
0.876 at 300 iterations: the tests keep 0.95.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textgym
from textgym.agents import PPO, REINFORCE

SEEDS = (0, 1, 2, 3)
ITERATIONS, BATCH = 300, 32
PATTERN_SETTINGS = {  # PPO at TRL's GAE lambda, as the docstring's rows: at 1.0 seeds fell short of 0.95
    "ppo": (PPO, {"learning_rate": 3e-4, "kl_coef": 0.02, "gae_lambda": 0.95}),
    "reinforce": (
        REINFORCE,
        {"learning_rate": 1e-3, "baseline": "rloo", "num_generations": 8, "kl_coef": 0.02},
    ),
}


def training_scores(
    cls, seed: int, env_id: str, iterations: int, batch: int = BATCH, stop_at: float | None = None, **config
) -> list[float]:
    """The mean training score of each iteration, from a fresh tiny model.

    With ``stop_at``, training stops once the mean of the last 20 iterations reaches it (as SB3's
    ``StopTrainingOnRewardThreshold``), so a seed that solves the task early costs no more.
    """
    scores: list[float] = []

    def record(agent, metrics) -> bool:
        scores.append(metrics["objective/scores"])
        return stop_at is None or len(scores) < 20 or np.mean(scores[-20:]) < stop_at

    torch.set_num_threads(1)  # tiny models: threads only add overhead, and busy machines slow them down
    agent = cls(env_id, batch_size=batch, seed=seed, device="cpu", **config)
    agent.learn(iterations * batch, progress_bar=False, callback=record)
    return scores


def final_scores(
    cls, seed: int, env_id: str = "textgym/Pattern-v0", iterations: int = ITERATIONS, **config
) -> tuple[float, float]:
    """The mean training score of the first and of the last 20 iterations."""
    scores = training_scores(cls, seed, env_id, iterations, **config)
    return float(np.mean(scores[:20])), float(np.mean(scores[-20:]))


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("agent", sorted(PATTERN_SETTINGS))
def test_agent_solves_pattern_on_every_seed(agent, seed):
    cls, config = PATTERN_SETTINGS[agent]
    first, last = final_scores(cls, seed, **config)
    assert first < 0.2  # it starts from a random policy
    assert last >= 0.95, f"{agent} seed {seed} reached {last:.3f} of the optimum 1.0"


# Copy-v1 and Reverse-v1 with REINFORCE at lr 1e-3, RLOO over 4, kl_coef 0.02, batch 32. They learn, but
# not to the optimum within a test's budget: mean training score of the last 20 iterations, seeds 0-3
# (random play about 0.05; measured before the 2026-12-07 install):
# - Copy-v1: 0.45, 0.44, 0.44, 0.36 at 500 iterations; 0.71, 0.62, 0.60, 0.67 at 1,500.
# - Reverse-v1: 0.48, 0.46, 0.47, 0.46 at 500 iterations; 0.69, 0.55, 0.66, 0.72 at 1,500.
# v0 (whose prompts did not mark where they end) held REINFORCE at 0.32-0.35 on Reverse at 1,500.
SYMBOL_TASKS = {"textgym/Copy-v1": 0.4, "textgym/Reverse-v1": 0.4}
SYMBOL_SETTINGS = {"learning_rate": 1e-3, "baseline": "rloo", "num_generations": 4, "kl_coef": 0.02}


@pytest.mark.parametrize("env_id", sorted(SYMBOL_TASKS))
def test_reinforce_learns_copy_and_reverse(env_id):
    first, last = final_scores(REINFORCE, 0, env_id, iterations=500, **SYMBOL_SETTINGS)
    assert first < 0.1  # it starts from a random policy
    assert last >= SYMBOL_TASKS[env_id], f"{env_id}: {first:.3f} -> {last:.3f} in 500 iterations"


# The toy suite to the optimum, asked of both agents on every seed: 0.95 on Copy-v1 and Reverse-v1. What it
# takes is a large batch: at 32 episodes per iteration no agent had every seed past 0.92 by 1,500
# iterations (above); at 256, PPO's seeds 0-3 stood at 0.960, 0.981, 0.975, 0.931 on Copy after 200
# iterations and at 0.966, 0.937, 0.937, 0.908 on Reverse after 400, where seed 1 crept on to 0.954 by 800
# (its last error, the third symbol of 4-symbol strings). REINFORCE also needs a firmer entropy floor: at
# kl_coef 0.02 Copy's seed 3 turned deterministic at 0.70 (600 iterations); at 0.05 every seed reached 0.95
# on Copy in 284-344 iterations and on Reverse in 764-879. Too long for the default suite (an iteration of
# 256 costs PPO about 0.6 s here, REINFORCE 0.17 s), so these runs are their own tier: `pytest -m
# toy_suite` (deselected by default). Each run stops once the mean training score of its last 20 iterations
# reaches 0.95 (as SB3's StopTrainingOnRewardThreshold), and fails if it has not by the cap.
TOY_BATCH = 256
TOY_SETTINGS = {
    # TRL's GAE lambda, not PPO's default 1.0: at 1.0 Reverse's seed 0 was short of 0.95 at the cap.
    "ppo": (PPO, {"learning_rate": 1e-3, "kl_coef": 0.02, "gae_lambda": 0.95}),
    "reinforce": (
        REINFORCE,
        {"learning_rate": 1e-3, "baseline": "rloo", "num_generations": 4, "kl_coef": 0.05},
    ),
}
TOY_CAPS = {  # (agent, env_id): most iterations a seed may take
    ("ppo", "textgym/Copy-v1"): 400,
    ("ppo", "textgym/Reverse-v1"): 1000,
    ("reinforce", "textgym/Copy-v1"): 600,
    ("reinforce", "textgym/Reverse-v1"): 1500,
}


@pytest.mark.toy_suite
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("agent, env_id", sorted(TOY_CAPS))
def test_agent_solves_symbol_task_on_every_seed(agent, env_id, seed):
    cls, config = TOY_SETTINGS[agent]
    cap = TOY_CAPS[agent, env_id]
    scores = training_scores(cls, seed, env_id, cap, batch=TOY_BATCH, stop_at=0.95, **config)
    assert np.mean(scores[:20]) < 0.1  # it starts from a random policy
    reached = float(np.mean(scores[-20:]))
    assert reached >= 0.95, f"{agent} seed {seed} on {env_id}: {reached:.3f} after {len(scores)} iterations"


# The adapters, on the same task from the same fresh tiny model: 16 envs x 16 steps per rollout, 8,192
# env steps (generated tokens), held-out score on 32 test episodes. Random play scores 0.046. Measured:
# - SB3 PPO (batch 64, 4 epochs, lr 1e-3), seeds 0-2: 1.0, 0.383, 0.685; at 12,288 steps 0.75, 0.741.
# - SB3 A2C (8 steps, lr 2e-3, normalized advantages), seeds 0-2: 0.341, 0.167, 0.167; at lr 1e-3
#   0.14-0.17 (RMSprop or Adam), and lr 5e-3 collapsed one seed to 0.
# - MaskablePPO (PPO's settings, top-8 mask of 13 tokens from the reference, beta 0.01), seeds 0-2:
#   0.608, 0.362, 0.606; since the policy's forward drops all-padding columns (the same function, other
#   rounding, so other samples): 0.663, 0.291, 0.515. In the 2026-12-07 install (same code, other numerics:
#   a package within the pins changed them) seeds 0-3 came out at 0.542, 0.000, 0.058, 0.307; with beta
#   0.02 at 0.631, 0.104, 0.631, 0.614; with beta 0.02 and lr 5e-4 at 0.598, 0.643, 0.597, 0.604: the
#   settings the test now runs.
# One seed each (the suite's time budget): seed 1, the weakest measured for MaskablePPO. SB3 PPO's own
# learning check is examples/sb3_ppo.py's test (the same settings at 4,096 steps).
SB3_RUNS = {
    "sb3-a2c": (1, 0.12, {"n_steps": 8, "learning_rate": 2e-3, "normalize_advantage": True}),
    "sb3-maskable-ppo": (
        1,
        0.5,
        {"n_steps": 16, "batch_size": 64, "n_epochs": 4, "learning_rate": 5e-4, "mask_top_k": 8,
         "env_kwargs": {"kl_coef": 0.02}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SB3_RUNS))
def test_sb3_adapters_learn_pattern(name):
    seed, threshold, config = SB3_RUNS[name]
    torch.set_num_threads(1)
    agent = textgym.make_agent(name, "textgym/Pattern-v0", seed=seed, n_envs=16, **config)
    before = textgym.evaluate(agent, "textgym/Pattern-v0", episodes=32, seed=100).score
    agent.learn(total_timesteps=8192)
    after = textgym.evaluate(agent, "textgym/Pattern-v0", episodes=32, seed=100).score
    assert before < 0.1
    assert after >= threshold, f"{name} seed {seed}: {before:.3f} -> {after:.3f}"
