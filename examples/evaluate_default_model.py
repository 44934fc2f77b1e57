"""Evaluate a model zero-shot on textgym tasks and print a baseline table (the README's main job).

The default is the embedded SmolLM2-135M-Instruct on held-out prompts of every task, sampling from the
model itself, which is also the KL reference: the zero-shot baseline that RL training must beat. Every
episode is a real rollout through the vector env: the model samples each token with its KV cache, and
the env scores the finished text and shapes it by KL.

    python examples/evaluate_default_model.py [--model smollm2] [--episodes 32] [--tasks ID ...]
"""

from __future__ import annotations

import argparse

import textgym
from textgym.evaluation import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2", help="model name or local folder (default: smollm2)")
    parser.add_argument("--tasks", nargs="+", default=sorted(textgym.ENVS))
    parser.add_argument("--episodes", type=int, default=32, help="episodes per task")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    results = []
    for env_id in args.tasks:
        result = textgym.evaluate(
            "reference", env_id, args.episodes, num_envs=args.num_envs, seed=args.seed, model=args.model
        )
        results.append(result)
        print(f"{env_id}: score {result.score:.3f}, e.g. {result.prompts[0]!r} -> {result.completions[0]!r}")
    print(f"\nZero-shot {args.model}, held-out prompts, temperature 1 (KL: nats per episode, summed k1)\n")
    print(markdown_table({f"`{r.env_id}`": r for r in results}, label="task"))


if __name__ == "__main__":
    main()
