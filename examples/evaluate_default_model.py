"""Evaluate a model zero-shot on textgym tasks through the vector env, and print reward statistics.

The default is the embedded SmolLM2-135M-Instruct on the toy suite's held-out split, sampling from the
model itself (so it is also the KL reference: the zero-shot baseline). Every episode is a real rollout:
the model samples each token with its KV cache, the env scores the finished text and shapes it by KL.

    python examples/evaluate_default_model.py [--model smollm2] [--episodes 32] [--num-envs 8]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

import textgym  # noqa: F401  (registers the envs)
from textgym.rollout import Episodes, sample_episodes

TASKS = ("textgym/Pattern-v0", "textgym/Copy-v0", "textgym/Reverse-v0")


def evaluate(env_id: str, model: str, episodes: int, num_envs: int, seed: int) -> list[Episodes]:
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        model=model,
        kl_coef=0.05,
        split="test",
        autoreset_mode=AutoresetMode.DISABLED,
    )
    policy = envs.unwrapped.batch.policy.model  # the shared, frozen model the env also uses as reference
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(-(-episodes // num_envs)):
        batches.append(sample_episodes(envs, policy, seed=seed + i * num_envs, generator=generator))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2", help="model name or local folder (default: smollm2)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--episodes", type=int, default=32, help="episodes per task")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    header = (
        f"{'task':22} {'episodes':>8} {'score':>15} {'return':>8} {'KL':>7} {'length':>7} {'EOS rate':>8}"
    )
    rows, samples = [], []
    for env_id in args.tasks:
        batches = evaluate(env_id, args.model, args.episodes, args.num_envs, args.seed)
        scores = np.concatenate([b.scores for b in batches])
        stderr = scores.std(ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else 0.0
        rows.append(
            f"{env_id:22} {len(scores):>8} {scores.mean():>8.3f} ± {stderr:.3f} "
            f"{np.concatenate([b.returns for b in batches]).mean():>8.3f} "
            f"{np.concatenate([b.kl for b in batches]).mean():>7.3f} "
            f"{np.concatenate([b.lengths for b in batches]).mean():>7.2f} "
            f"{np.concatenate([b.stopped for b in batches]).mean():>8.2f}"
        )
        first = batches[0]
        samples += [(env_id, first.prompts[i], first.completions[i], first.scores[i]) for i in range(2)]
    print(f"\nZero-shot {args.model} on held-out prompts (KL: summed per-token k1 to the reference, nats)")
    print(header)
    print("\n".join(rows))
    print("\nSamples:")
    for env_id, prompt, completion, score in samples:
        print(f"  {env_id}: {prompt!r} -> {completion!r} (score {score:.2f})")


if __name__ == "__main__":
    main()
