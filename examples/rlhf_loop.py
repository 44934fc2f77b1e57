"""The RLHF loop end to end with a simulated annotator, and the reward over-optimisation it leads to.

    python examples/rlhf_loop.py --out runs/rlhf  # textgym/Keywords-v0, about 85 minutes on a 2-core CPU

1. Sample two completions for each of ``--pairs`` train prompts from the zero-shot model.
2. The simulated annotator judges each pair by the task's own reward (the "gold", hidden from training)
   with Bradley-Terry noise (``--noise``): ``textgym annotate --simulate``.
3. Train a reward model on those judgments (all-MiniLM-L6-v2 by default).
4. Train PPO against the learned reward with KL shaping, for each KL coefficient in ``--kl-coefs``.
5. At each of ``--points`` checkpoints, measure on held-out prompts the KL to the reference, the gold
   score and the learned (proxy) score.

Plotting gold and proxy against ``sqrt(KL)`` reproduces, at small scale, Gao, Schulman and Hilton's (2022)
picture: the proxy keeps rising while the gold score peaks and falls; a larger KL coefficient holds the
policy at a smaller KL. The README shows a run of the defaults and what it did.
Writes ``prefs.jsonl``, ``reward-model/``, ``overoptimisation.csv``, ``overoptimisation.png`` and
``samples.md`` (the first held-out completions at each point, with their gold scores) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import textgym
from textgym.agents import PPO
from textgym.preferences import RewardModelConfig, read_preferences, train_reward_model
from textgym.preferences.annotate import Session, sample_items, simulate


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="textgym/Keywords-v0")
    parser.add_argument("--out", type=Path, default=Path("runs/rlhf"))
    parser.add_argument("--pairs", type=int, default=300, help="judged pairs of completions")
    parser.add_argument("--noise", type=float, default=0.1, help="the annotator's Bradley-Terry temperature")
    parser.add_argument(
        "--backbone", default="minilm", help="'minilm', a model folder, or 'policy' (the env's)"
    )
    parser.add_argument("--rm-lr", type=float, default=5e-5, help="the reward model's step size")
    parser.add_argument("--rm-epochs", type=int, default=3)
    parser.add_argument("--kl-coefs", default="0.01,0.1", help="comma-separated betas, one PPO run each")
    parser.add_argument(
        "--timesteps", type=int, default=8192, help="PPO's budget per beta (generated tokens)"
    )
    parser.add_argument("--points", type=int, default=4, help="measurements along each PPO run")
    parser.add_argument("--lr", type=float, default=2e-5, help="PPO's step size")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1-2. Judged pairs; a stopped run continues the session where it stopped.
    prefs = args.out / "prefs.jsonl"
    try:
        session = Session(prefs)
    except FileNotFoundError:
        items = sample_items("reference", args.env, args.pairs, 2, seed=args.seed, split="train")
        session = Session(prefs, items, {"env": args.env, "policy": "reference", "seed": args.seed})
    simulate(session, args.noise, seed=args.seed)
    print(f"{len(read_preferences(prefs))} judgments in {prefs}")

    # 3. The reward model.
    rm = args.out / "reward-model"
    if not (rm / "reward_model.json").is_file():
        backbone = args.backbone
        if backbone == "policy":
            backbone = gym.make(args.env).unwrapped.model  # the env's own model, as a sequence classifier
        config = RewardModelConfig(learning_rate=args.rm_lr, epochs=args.rm_epochs, seed=args.seed)
        _, report = train_reward_model(read_preferences(prefs), backbone, out=rm, config=config)
        print(report.table())

    # 4-5. PPO against the learned reward, measured by gold and proxy on held-out prompts.
    rows = []
    samples = [f"# Held-out samples: {args.env}, PPO against the learned reward\n"]
    for beta in (float(b) for b in args.kl_coefs.split(",")):
        agent = PPO(
            args.env,
            env_kwargs={"reward_model": str(rm)},
            kl_coef=beta,
            learning_rate=args.lr,
            batch_size=args.batch_size,
            gae_lambda=1.0,
            seed=args.seed,
        )
        for point in range(args.points + 1):
            if point:
                agent.learn(total_timesteps=round(args.timesteps * point / args.points), progress_bar=False)
            gold = textgym.evaluate(agent, args.env, args.eval_episodes, seed=args.seed)
            proxy = textgym.evaluate(
                agent, args.env, args.eval_episodes, seed=args.seed, reward_model=str(rm)
            )
            rows.append(
                {
                    "kl_coef": beta,
                    "env_steps": agent.num_timesteps,
                    "kl": gold.kl,
                    "gold": gold.score,
                    "proxy": proxy.score,
                }
            )
            samples.append(f"\n## beta {beta:g}, {agent.num_timesteps} tokens, KL {gold.kl:.2f}\n\n")
            samples += [
                f"- {score:.2f}: {prompt!r} -> {completion!r}\n"
                for prompt, completion, score in zip(
                    gold.prompts[:4], gold.completions[:4], gold.scores[:4], strict=True
                )
            ]
            print(
                f"beta {beta:g}, {agent.num_timesteps:>6} tokens: KL {gold.kl:6.2f}  "
                f"gold {gold.score:.3f}  proxy {proxy.score:.3f}",
                flush=True,
            )

    with (args.out / "overoptimisation.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "samples.md").write_text("".join(samples), encoding="utf-8")
    plot(rows, args.out / "overoptimisation.png", args.env)
    return rows


def plot(rows: list[dict[str, float]], path: Path, env_id: str) -> None:
    """Gold and proxy scores against sqrt(KL), one colour per beta."""
    fig, (gold_ax, proxy_ax) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for beta in sorted({r["kl_coef"] for r in rows}):
        run = [r for r in rows if r["kl_coef"] == beta]
        x = [math.sqrt(max(r["kl"], 0.0)) for r in run]
        gold_ax.plot(x, [r["gold"] for r in run], marker="o", label=f"beta {beta:g}")
        proxy_ax.plot(x, [r["proxy"] for r in run], marker="o", label=f"beta {beta:g}")
    gold_ax.set(xlabel="sqrt(KL to the reference)", ylabel="gold score (the task's reward)", title="gold")
    proxy_ax.set(xlabel="sqrt(KL to the reference)", ylabel="learned reward (z-score)", title="proxy")
    gold_ax.legend()
    fig.suptitle(f"{env_id}: PPO against a learned reward")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
