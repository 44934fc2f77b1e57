"""Time of one training iteration (rollout + update) of our agents, as ratios against TRL's RLOOTrainer.

Every system trains SmolLM2-135M-Instruct (the embedded default model, fp32, CPU) on the prompts of
``textgym/Sentiment-v0`` (see ``bench/trl_yardstick.py``), with the same batch: ``--batch`` completions
per iteration, 2 per prompt, at most ``--tokens`` generated tokens each (sampling at temperature 1 stops
at EOS), rewarded by VADER, with a KL penalty of 0.05 to the frozen model and AdamW at lr 1e-6. Each of
our agents is paired with the TRL configuration that does the same number of gradient passes per batch:

- ``TRL RLOO`` (``num_iterations=1``): ``model.generate``, no-grad forwards for the old and the reference
  log-probs, the reward, one forward/backward. Paired with
  - ``REINFORCE (rloo)``: our :class:`textgym.agents.REINFORCE` with the RLOO baseline: the vector env's
    KV-cached rollout (the reference stepped alongside, KL-shaped return), one forward/backward;
  - ``PPO, 1 epoch``: our :class:`textgym.agents.PPO` with ``n_epochs=1``: the same rollout, one
    forward/backward (whose detached outputs are the old log-probs and values) with the value head.
- ``TRL RLOO x4`` (``num_iterations=4``): the same generation and forwards, then four clipped optimizer
  steps on the batch. Paired with ``PPO, 4 epochs``: our PPO with its defaults, four forward/backward
  passes. TRL's PPO left its main package; multi-step RLOO is its nearest like-for-like.

One iteration of ours is ``agent.collect(i)`` then ``agent.update(episodes, i)``, exactly what
``agent.learn`` runs per iteration. TRL's is the wall time between the trainer's ``on_step_begin`` and
``on_step_end`` callbacks (its generation happens inside the step), summed over ``num_iterations`` steps.
Within a pairing the systems run interleaved in one process: after each TRL iteration a callback runs one
iteration of each paired agent, so they all see the same machine load. The first round of each pairing is
a warm-up and is not timed. The table shows median seconds per iteration and the median over rounds of
(ours / TRL's time in the same round); absolute times mean little on a noisy machine, the ratios are the
result. Target: ratio <= 1.0.

Needs ``trl`` (``pip install 'textgym[bench]'``). Usage:
``python bench/train.py [--batch 8] [--tokens 32] [--iterations 3]``
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import tempfile
import time
import warnings

import torch
from trl_yardstick import ENV_ID, KL_COEF, NUM_GENERATIONS, make_rloo_trainer

import textgym  # noqa: F401  (registers the envs)
from textgym.agents import PPO, REINFORCE
from textgym.agents.base import LMAgent
from textgym.models import load_model

LEARNING_RATE = 1e-6
SEED = 0


def make_interleaver(yardstick: str, agents: dict[str, LMAgent], steps_per_round: int):
    from transformers import TrainerCallback

    class Interleave(TrainerCallback):
        """Times TRL's iterations and, after each, runs and times one iteration of each paired agent."""

        def __init__(self) -> None:
            self.times: dict[str, list[float]] = {yardstick: [], **{name: [] for name in agents}}
            self.start, self.elapsed, self.steps = 0.0, 0.0, 0

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.elapsed += time.perf_counter() - self.start
            self.steps += 1
            if self.steps % steps_per_round:
                return  # TRL is still stepping on the same generated batch
            self.times[yardstick].append(self.elapsed)
            self.elapsed = 0.0
            round_ = len(self.times[yardstick]) - 1
            for name, agent in agents.items():
                start = time.perf_counter()
                episodes = agent.collect(round_)
                agent.train_mode()
                agent.update(episodes, round_)
                self.times[name].append(time.perf_counter() - start)
            line = "  ".join(f"{name} {t[-1]:.2f}s" for name, t in self.times.items())
            print(f"round {round_}{' (warm-up)' if round_ == 0 else ''}: {line}", flush=True)

    return Interleave()


def run_pairing(
    num_iterations: int, agents: dict[str, LMAgent], args: argparse.Namespace, bundle
) -> tuple[str, dict[str, list[float]]]:
    """Interleave one TRL configuration with its paired agents; returns the yardstick's name and times."""
    yardstick = "TRL RLOO" if num_iterations == 1 else f"TRL RLOO x{num_iterations}"
    callback = make_interleaver(yardstick, agents, num_iterations)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = make_rloo_trainer(
            bundle.model.name_or_path,
            bundle.tokenizer,
            batch=args.batch,
            tokens=args.tokens,
            steps=(args.iterations + 1) * num_iterations,
            learning_rate=LEARNING_RATE,
            output_dir=output_dir,
            callbacks=[callback],
            num_iterations=num_iterations,
            seed=SEED,
        )
        trainer.train()
    return yardstick, {name: t[1:] for name, t in callback.times.items()}  # drop the warm-up round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="completions per iteration (prompts x 2)")
    parser.add_argument("--tokens", type=int, default=32, help="max generated tokens per completion")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (after one warm-up)")
    args = parser.parse_args()
    if args.batch % NUM_GENERATIONS:
        parser.error(f"--batch must be a multiple of num_generations={NUM_GENERATIONS}")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(SEED)

    bundle = load_model("smollm2", device="cpu")
    if getattr(bundle.model.config, "quantization_config", None) is not None:
        raise SystemExit("the default model is still quantized (GGUF); TRL cannot train it")
    common = {
        "batch_size": args.batch,
        "learning_rate": LEARNING_RATE,
        "kl_coef": KL_COEF,
        "device": "cpu",
        "seed": SEED,
        "env_kwargs": {"generation_budget": args.tokens},
    }
    pairings = {
        1: lambda: {
            "REINFORCE (rloo)": REINFORCE(ENV_ID, baseline="rloo", num_generations=NUM_GENERATIONS, **common),
            "PPO, 1 epoch": PPO(ENV_ID, n_epochs=1, **common),
        },
        4: lambda: {"PPO, 4 epochs": PPO(ENV_ID, n_epochs=4, **common)},
    }
    rows: list[tuple[str, str, list[float], float]] = []
    for num_iterations, make_agents in pairings.items():
        yardstick, times = run_pairing(num_iterations, make_agents(), args, bundle)
        gc.collect()  # the pairing's trainer and agents, before the next pairing loads its own
        for name, t in times.items():
            ratio = statistics.median(a / b for a, b in zip(t, times[yardstick], strict=True))
            rows.append((name, yardstick, t, ratio))

    import trl

    print(
        f"\n{args.batch} completions ({args.batch // NUM_GENERATIONS} prompts x {NUM_GENERATIONS}), "
        f"<= {args.tokens} tokens, {ENV_ID} prompts, SmolLM2-135M-Instruct fp32 on CPU "
        f"({torch.get_num_threads()} threads), trl {trl.__version__}, median of {args.iterations} rounds"
    )
    print(f"{'system':<18} {'yardstick':<13} {'s/iteration':>12} {'vs yardstick':>13}")
    for name, yardstick, t, ratio in rows:
        print(f"{name:<18} {yardstick:<13} {statistics.median(t):>12.2f} {ratio:>13.2f}")


if __name__ == "__main__":
    main()
