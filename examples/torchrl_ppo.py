"""Train a fresh tiny model on a toy task with TorchRL's PPO (Collector, GAE, ClipPPOLoss), then compare
held-out scores before and after.

    python examples/torchrl_ppo.py --total-timesteps 6144

Each timestep is one generated token; ``textgym.agents.torchrl`` holds the adapter (``pip install
torchrl``, a textgym dependency).
"""

from __future__ import annotations

import argparse

import textgym
from textgym.agents.torchrl import TorchRLPPO


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="textgym/Pattern-v0")
    parser.add_argument("--total-timesteps", type=int, default=6144, help="env steps (generated tokens)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # The task's own tiny model, freshly built: the policy trains a copy, the env keeps it as reference.
    agent = TorchRLPPO(args.env, seed=args.seed, learning_rate=args.lr, num_envs=32, n_steps=8)

    before = textgym.evaluate(agent, args.env, args.eval_episodes, seed=args.seed).score  # test prompts
    agent.learn(total_timesteps=args.total_timesteps)
    after = textgym.evaluate(agent, args.env, args.eval_episodes, seed=args.seed).score
    print(
        f"TorchRL PPO, {args.env}, {args.total_timesteps} tokens: held-out score {before:.3f} -> {after:.3f}"
    )
    return {"before": before, "after": after}


if __name__ == "__main__":
    main()
