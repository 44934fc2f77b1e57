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
a warm-up and is not timed. The table shows median seconds per iteration, the median over rounds of
(ours / TRL's time in the same round), and the mean completion length (sampling stops at EOS, so at long
budgets the systems' lengths differ by chance); absolute times mean little on a noisy machine, the ratios
are the result. Targets: REINFORCE at most 0.75x TRL RLOO, 4-epoch PPO at most 0.80x TRL RLOO x4.

``--memory`` instead runs each system alone in a fresh process for two iterations and reports its peak
memory (``ru_maxrss`` on CPU, ``torch.cuda.max_memory_allocated`` on a GPU) and how many copies of the
model's weights it holds (distinct embedding storages among its policy, reference and env models).

Needs ``trl`` (``pip install 'textgym[bench]'``). Usage:
``python bench/train.py [--batch 8] [--tokens 32] [--iterations 3] [--sweep 32,64,128,256] [--memory]
[--device cuda]``
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
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
from textgym.models.default_model import default_model_dir

LEARNING_RATE = 1e-6
SEED = 0


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA runs asynchronously: count the queued work too


def make_interleaver(yardstick: str, agents: dict[str, LMAgent], steps_per_round: int):
    from transformers import TrainerCallback

    class Interleave(TrainerCallback):
        """Times TRL's iterations and, after each, runs and times one iteration of each paired agent."""

        def __init__(self) -> None:
            self.times: dict[str, list[float]] = {yardstick: [], **{name: [] for name in agents}}
            # Mean completion length per iteration: sampling stops at EOS, so at a long budget the
            # systems' lengths (and so their costs) differ by chance; the table shows them.
            self.lengths: dict[str, list[float]] = {name: [] for name in self.times}
            self.start, self.elapsed, self.steps = 0.0, 0.0, 0

        def on_step_begin(self, args, state, control, **kwargs):
            synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize()
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
                synchronize()
                self.times[name].append(time.perf_counter() - start)
                self.lengths[name].append(float(episodes.completion_mask.sum(1).float().mean()))
            line = "  ".join(f"{name} {t[-1]:.2f}s" for name, t in self.times.items())
            print(f"round {round_}{' (warm-up)' if round_ == 0 else ''}: {line}", flush=True)

    return Interleave()


def run_pairing(
    num_iterations: int, agents: dict[str, LMAgent], args: argparse.Namespace, bundle
) -> tuple[str, dict[str, list[float]], dict[str, list[float]]]:
    """Interleave one TRL configuration with its paired agents.

    Returns the yardstick's name, and per system its seconds and mean completion length per timed round.
    """
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
            device=args.device,
        )
        trainer.train()
    by_round: dict[int, list[float]] = {}
    for entry in trainer.state.log_history:  # a round is num_iterations steps on one generated batch
        length = entry.get("completions/mean_length")
        if length is not None and math.isfinite(length):
            by_round.setdefault((entry["step"] - 1) // num_iterations, []).append(length)
    callback.lengths[yardstick] = [statistics.mean(by_round[r]) for r in sorted(by_round)]
    drop_warm_up = {name: t[1:] for name, t in callback.times.items()}
    return yardstick, drop_warm_up, {name: x[1:] for name, x in callback.lengths.items()}


MEMORY_SYSTEMS = (
    "TRL RLOO",
    "REINFORCE (rloo)",
    "TRL RLOO x4",
    "PPO, 4 epochs",
    "PPO, 4 epochs, LoRA r=8",
)
MEMORY_ITERATIONS = 2  # AdamW's moments (two copies of the trained weights) exist from the first step on


def weight_copies(*models: torch.nn.Module) -> int:
    """Distinct copies of the weights among ``models``: their input embeddings' distinct storages (a LoRA
    policy shares its base model's)."""
    return len({m.get_input_embeddings().weight.data_ptr() for m in models if m is not None})


def memory_of(system: str, args: argparse.Namespace, common: dict) -> dict[str, float]:
    """Build ``system``, run two iterations, and report its peak memory and weight copies (this process).

    Two, because a one-step run peaks before the optimizer has state: its first pass's activations are
    freed before AdamW allocates its moments. Every later pass (a second iteration, or PPO's second
    epoch) holds both, and that is the peak a run lives with.
    """
    import resource

    if system.startswith("TRL"):
        # TRL loads the policy and the reference from the folder itself: a bundle loaded here would be a
        # third copy in this process's peak.
        from transformers import AutoTokenizer

        folder = str(default_model_dir())
        num_iterations = 4 if system.endswith("x4") else 1
        with tempfile.TemporaryDirectory() as output_dir:
            trainer = make_rloo_trainer(
                folder, AutoTokenizer.from_pretrained(folder), batch=args.batch, tokens=args.tokens,
                steps=MEMORY_ITERATIONS * num_iterations, num_iterations=num_iterations,
                learning_rate=LEARNING_RATE, output_dir=output_dir, seed=SEED, device=args.device,
            )  # fmt: skip
            trainer.train()
            copies = weight_copies(trainer.model, trainer.ref_model)
    else:
        if system.startswith("REINFORCE"):
            agent = REINFORCE(ENV_ID, baseline="rloo", num_generations=NUM_GENERATIONS, **common)
        else:
            agent = PPO(ENV_ID, n_epochs=4, **common, **({"lora_r": 8} if "LoRA" in system else {}))
        agent.learn(total_episodes=MEMORY_ITERATIONS * args.batch, progress_bar=False)
        envs = agent.envs
        copies = weight_copies(
            agent.policy.base_model, envs.model.model, envs.ref_model.model if envs.ref_model else None
        )
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_mb": peak, "weight_copies": copies}


def run_memory(args: argparse.Namespace) -> None:
    import json
    import subprocess
    import sys

    print(f"{'system':<26} {'peak memory':>12} {'weight copies':>14}")
    for system in MEMORY_SYSTEMS:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-of", system, "--batch", str(args.batch), "--tokens",
             str(args.tokens), "--device", args.device],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        unit = "MiB (CUDA)" if torch.cuda.is_available() else "MiB RSS"
        print(f"{system:<26} {figures['peak_mb']:>8.0f} {unit} {figures['weight_copies']:>6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="completions per iteration (prompts x 2)")
    parser.add_argument("--tokens", type=int, default=32, help="max generated tokens per completion")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (after one warm-up)")
    parser.add_argument(
        "--sweep", help="comma-separated completion lengths, e.g. 32,64,128,256 (overrides --tokens)"
    )
    parser.add_argument("--memory", action="store_true", help="peak memory and weight copies per system")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bf16 for every system)")
    parser.add_argument("--memory-of", choices=MEMORY_SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        run_memory(args)
        return
    if args.batch % NUM_GENERATIONS:
        parser.error(f"--batch must be a multiple of num_generations={NUM_GENERATIONS}")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(SEED)

    bundle = load_model("smollm2", device=args.device)
    if getattr(bundle.model.config, "quantization_config", None) is not None:
        raise SystemExit("the default model is still quantized (GGUF); TRL cannot train it")
    common = {
        "batch_size": args.batch,
        "learning_rate": LEARNING_RATE,
        "kl_coef": KL_COEF,
        "device": args.device,
        "seed": SEED,
        "env_kwargs": {"generation_budget": args.tokens},
    }
    if args.memory_of:
        import json

        print(json.dumps(memory_of(args.memory_of, args, common)))
        return
    pairings = {
        1: lambda: {
            "REINFORCE (rloo)": REINFORCE(ENV_ID, baseline="rloo", num_generations=NUM_GENERATIONS, **common),
            "PPO, 1 epoch": PPO(ENV_ID, n_epochs=1, **common),
        },
        4: lambda: {"PPO, 4 epochs": PPO(ENV_ID, n_epochs=4, **common)},
    }
    import trl

    sweep = [args.tokens] if args.sweep is None else [int(t) for t in args.sweep.split(",")]
    for tokens in sweep:  # the length sweep: how the cost of an iteration grows with the completions
        args.tokens = tokens
        common["env_kwargs"]["generation_budget"] = tokens  # the pairings' agents are built after this
        rows: list[tuple[str, str, list[float], float, list[float]]] = []
        for num_iterations, make_agents in pairings.items():
            yardstick, times, lengths = run_pairing(num_iterations, make_agents(), args, bundle)
            gc.collect()  # the pairing's trainer and agents, before the next pairing loads its own
            for name, t in times.items():
                ratio = statistics.median(a / b for a, b in zip(t, times[yardstick], strict=True))
                rows.append((name, yardstick, t, ratio, lengths[name]))
        print(
            f"\n{args.batch} completions ({args.batch // NUM_GENERATIONS} prompts x {NUM_GENERATIONS}), "
            f"<= {tokens} tokens, {ENV_ID} prompts, SmolLM2-135M-Instruct fp32 on CPU "
            f"({torch.get_num_threads()} threads), trl {trl.__version__}, median of {args.iterations} rounds"
        )
        print(
            f"{'system':<18} {'yardstick':<13} {'s/iteration':>12} {'vs yardstick':>13} {'mean tokens':>12}",
            flush=True,
        )
        for name, yardstick, t, ratio, length in rows:
            mean_length = f"{statistics.mean(length):.1f}" if length else "?"
            print(
                f"{name:<18} {yardstick:<13} {statistics.median(t):>12.2f} {ratio:>13.2f} {mean_length:>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
