"""One rank of a data-parallel run, started by ``torchrun`` from ``test_distributed.py``.

``python -m torch.distributed.run --nproc-per-node 2 tests/distributed_worker.py ALGO OUT`` collects the
first iteration on each rank, takes the update, and saves this rank's episodes, the update's metrics and
the weights after it to ``OUT/rank<k>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from textgym.agents import PPO, REINFORCE

# What test_distributed.py builds the single-process run from: the same global batch and seed.
SETTINGS = {
    "reinforce": (REINFORCE, {"baseline": "rloo", "num_generations": 2}),
    "ppo": (PPO, {"n_epochs": 2, "value_learning_rate": 1e-2}),
}
COMMON = {"batch_size": 8, "learning_rate": 1e-3, "kl_coef": 0.1, "seed": 3, "device": "cpu"}


def main(algo: str, out: str) -> None:
    torch.set_num_threads(1)
    cls, config = SETTINGS[algo]
    agent = cls("textgym/Copy-v1", **COMMON, **config)
    episodes = agent.collect(0)
    agent.train_mode()
    metrics = agent.update(episodes, 0)
    state = {"episodes": episodes, "metrics": metrics, "weights": agent.policy.trainable_state_dict()}
    torch.save(state, Path(out) / f"rank{agent.rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
