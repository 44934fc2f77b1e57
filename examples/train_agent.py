"""Train REINFORCE or PPO on a textgym task, then compare held-out figures before and after.

    python examples/train_agent.py --algo ppo --env textgym/Pattern-v0 --episodes 4800 --lr 3e-4
    python examples/train_agent.py --algo reinforce --env textgym/Sentiment-v0 --episodes 800 --lr 1e-6
    python examples/train_agent.py --algo ppo --env textgym/Sentiment-v0 --config gae_lambda=1.0 n_epochs=2

Logs (TensorBoard and progress.csv) and checkpoints go under ``--out``; ``--resume`` continues a run.
``--help`` lists every config field of both algorithms with its default and help text.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

from textgym.agents import PPO, REINFORCE
from textgym.agents.config import config_help
from textgym.evaluation import Evaluation, markdown_table

ALGORITHMS = {"reinforce": REINFORCE, "ppo": PPO}


def parse_setting(parser: argparse.ArgumentParser, item: str) -> tuple[str, Any]:
    """``KEY=VALUE``, the value read as a Python literal (``1e-5``, ``True``, ``None``) or else a string."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        parser.error(f"--config takes KEY=VALUE items, got {item!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> dict[str, Evaluation]:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(
            f"--config fields of {name}:\n{config_help(cls.config_class)}" for name, cls in ALGORITHMS.items()
        ),
    )
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), default="ppo")
    parser.add_argument("--env", default="textgym/Pattern-v0")
    parser.add_argument("--episodes", type=int, default=4800, help="training episodes")
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--kl-coef", type=float, default=None, help="default: the task's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/train_agent")
    parser.add_argument("--resume", default=None, help="a checkpoint to continue from")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="other fields of the algorithm's config, e.g. --config gae_lambda=1.0 n_epochs=2",
    )
    args = parser.parse_args(argv)
    config = dict(parse_setting(parser, item) for item in args.config)

    out = Path(args.out)
    agent = ALGORITHMS[args.algo](
        args.env,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        kl_coef=args.kl_coef,
        seed=args.seed,
        log_dir=str(out / "logs"),
        checkpoint_dir=str(out / "checkpoints"),
        checkpoint_every=50,
        **config,
    )
    before = agent.evaluate(args.eval_episodes, seed=args.seed)
    agent.learn(args.episodes, progress_bar=not args.no_progress, resume=args.resume)
    after = agent.evaluate(args.eval_episodes, seed=args.seed)
    print(f"\n{args.algo} on {args.env}, {args.episodes} training episodes; held-out figures:\n")
    print(markdown_table({"before": before, "after": after}))
    return {"before": before, "after": after}


if __name__ == "__main__":
    main()
