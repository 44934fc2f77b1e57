"""Cost of the library adapters, as ratios against our PPO run in the same process.

Four runners train the same model on the same env with the same batch, each one PPO iteration (rollout
and update) at a time through its library's own ``learn``:

- ``our PPO``: :class:`textgym.agents.PPO`, the yardstick (KV-cached rollout, one teacher-forced pass per
  minibatch of episodes).
- ``SB3 PPO, adapter``: stable-baselines3's ``PPO`` with :class:`~textgym.agents.sb3.LMActorCriticPolicy`
  (``kv_cache=True``, its default) and ``rollout_buffer_class=LMRolloutBuffer`` (whole-episode
  minibatches, one forward per episode), with :class:`~textgym.agents.sb3.TextgymCallback`.
- ``SB3 PPO, plain``: the same policy with ``policy_kwargs={"kv_cache": False}`` and SB3's own
  ``DictRolloutBuffer``: every step's observation is recomputed in full in the rollout, and every
  minibatch sample is one step's full forward and backward. It gets no ``TextgymCallback`` (which refuses
  the plain buffer when the KL is on), so it trains on the env's ``beta * log pi_ref`` per token without
  the policy's ``-beta * log pi``: a wrong reward, the same work. The KL coefficient (``--kl-coef``) is
  the same for every runner, so every env pays the same reference forward per step.
- ``TorchRL PPO``: :class:`textgym.agents.torchrl.TorchRLPPO` (Collector, GAE, ClipPPOLoss; no cache).

How the settings map, for ``B`` envs, ``T`` tokens per episode, ``E`` epochs and ``M`` minibatches:

- our PPO: ``batch_size=B``, ``n_epochs=E``, ``num_minibatches=M`` (``B/M`` episodes each);
- SB3 PPO: ``n_envs=B``, ``n_steps=T`` (one rollout is ``B`` whole episodes), ``n_epochs=E``,
  ``batch_size=B*T/M`` steps (the adapter's buffer fills a minibatch with ``B/M`` whole episodes; SB3's
  own draws ``B*T/M`` single steps from anywhere in the rollout);
- TorchRL: ``num_envs=B``, ``n_steps=T`` (``frames_per_batch=B*T``), ``n_epochs=E``,
  ``minibatch_size=B*T/M`` frames (``M`` draws per epoch, without replacement).

Our PPO with ``M > 1`` first evaluates the whole batch once without gradients (the old log-probs and
values; with ``M = 1`` its first epoch's pass doubles as that). SB3 keeps the rollout's log-probs and
values and adds one value call on the last observation; TorchRL's GAE runs the critic once over the
``B x (T + 1)`` observations. Those are the libraries' own costs and are timed as such.

Episodes end at EOS or at the budget ``T``, as in training: the runners are compared by time per env
step, counted as each iteration took them (the budget section's seconds per iteration also move with how
often EOS comes first). Learning rate 1e-5 and seed 0 everywhere, fp32 on CPU, one
``torch.set_num_threads`` for all
(``--threads``, default 1: on a 2-core machine shared with other jobs, two OpenMP threads made the tiny
model's iterations 80x slower, 22 s instead of 0.3 s, and the figures noise).

Timing: ``time.perf_counter`` around one ``learn`` call of one iteration. The runners take turns in
rounds, so that drifts in machine speed hit them alike: round 0 runs each once to warm it up and is not
timed; each timed round runs our PPO and the SB3 adapter, then plain SB3, then our PPO and the adapter
again, then TorchRL, then the runners at the second budget, and keeps each runner's fastest iteration in
the round (on a shared machine the least noisy estimate of a fixed workload). A runner's time per 1,000
env steps (generated tokens) is divided by our PPO's in the same round; the tables show the median over
rounds of that ratio, with the median absolute seconds beside it (absolute times mean little on a noisy
machine; the ratios are the result).

Two settings, each in one set of interleaved rounds, each giving two tables:

- *Toy task* (``textgym/Copy-v1``, its tiny model; 16 envs, 4 epochs, 4 minibatches by default).
- *Default model* (``textgym/Sentiment-v0``, SmolLM2-135M-Instruct; 4 envs, 1 epoch, 2 minibatches by
  default: the plain SB3 path and TorchRL redo the whole prefix at every step, so one of their iterations
  takes minutes on a 2-core CPU). Target: the SB3 adapter within 2x of our PPO.

*Cost per env step*: all four runners at the first generation budget (``--budgets``, default 16 and 32).
*Growth with the generation budget*: seconds per iteration at the second budget over the first, for our
PPO and the SB3 paths (plain SB3 on the default model only with ``--default-plain-budget``). Linear
growth gives at most 32/16 = 2.0 (less, as the prompt's fixed cost per episode is part of it); a cost
that recomputes the prefix at every step grows faster than linear, above 2.0 once the completion
outweighs the prompt.

Usage: ``python bench/adapters.py [--quick] [--no-default-model] [--steps 1024] [--default-steps 192]``
(``--help`` lists the rest). ``--quick`` runs the toy task alone, in about a minute; the default run
took 14.5 minutes on a 2-core CPU shared with another job, most of it the plain SB3 path and TorchRL on
the default model (four iterations each, warm-up included, at about 1 and 1.5 minutes apiece).
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from stable_baselines3 import PPO as SB3PPOAlgorithm
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.vec_env import VecMonitor

import textgym  # noqa: F401  (registers the envs)
from textgym.agents import PPO
from textgym.agents.sb3 import (
    LM_DEFAULTS,
    LMActorCriticPolicy,
    LMRolloutBuffer,
    TextgymCallback,
    TextgymVecEnv,
)
from textgym.agents.torchrl import TorchRLPPO
from textgym.models import ModelBundle, load_model
from textgym.tasks import CopyTask

TOY_ENV, DEFAULT_ENV = "textgym/Copy-v1", "textgym/Sentiment-v0"
LEARNING_RATE = 1e-5
SEED = 0
OURS = "our PPO"


@dataclass(frozen=True)
class Setting:
    env_id: str
    bundle: ModelBundle
    envs: int  # B
    tokens: int  # T, every episode's length
    epochs: int  # E
    minibatches: int  # M
    kl_coef: float

    @property
    def steps_per_iteration(self) -> int:
        return self.envs * self.tokens


class Runner:
    """One training setup; :meth:`iterate` runs one PPO iteration and returns the env steps it took."""

    def iterate(self) -> int:
        raise NotImplementedError


class Ours(Runner):
    def __init__(self, s: Setting) -> None:
        self.agent = PPO(
            s.env_id,
            model=s.bundle,
            env_kwargs={"generation_budget": s.tokens},
            batch_size=s.envs,
            n_epochs=s.epochs,
            num_minibatches=s.minibatches,
            kl_coef=s.kl_coef,
            learning_rate=LEARNING_RATE,
            seed=SEED,
            device="cpu",
        )
        self.batch = s.envs

    def iterate(self) -> int:
        before = self.agent.num_timesteps
        self.agent.learn(total_episodes=(self.agent.iteration + 1) * self.batch, progress_bar=False)
        return self.agent.num_timesteps - before


class SB3(Runner):
    def __init__(self, s: Setting, adapter: bool) -> None:
        env = TextgymVecEnv(s.env_id, s.envs, model=s.bundle, kl_coef=s.kl_coef, generation_budget=s.tokens)
        self.adapter, self.steps = adapter, s.steps_per_iteration
        self.model = SB3PPOAlgorithm(
            LMActorCriticPolicy,
            VecMonitor(env),
            policy_kwargs={"model": s.bundle, "value_seed": SEED, "kv_cache": adapter},
            rollout_buffer_class=LMRolloutBuffer if adapter else DictRolloutBuffer,
            n_steps=s.tokens,
            batch_size=s.steps_per_iteration // s.minibatches,
            n_epochs=s.epochs,
            seed=SEED,
            device="cpu",
            **{**LM_DEFAULTS, "learning_rate": LEARNING_RATE},
        )

    def iterate(self) -> int:
        before = self.model.num_timesteps
        callback = TextgymCallback() if self.adapter else None
        self.model.learn(self.steps, callback=callback, reset_num_timesteps=False)
        return self.model.num_timesteps - before


class TorchRL(Runner):
    def __init__(self, s: Setting) -> None:
        self.agent = TorchRLPPO(
            s.env_id,
            model=s.bundle,
            env_kwargs={"generation_budget": s.tokens},
            num_envs=s.envs,
            n_steps=s.tokens,
            n_epochs=s.epochs,
            minibatch_size=s.steps_per_iteration // s.minibatches,
            kl_coef=s.kl_coef,
            learning_rate=LEARNING_RATE,
            seed=SEED,
            device="cpu",
        )
        self.steps = s.steps_per_iteration

    def iterate(self) -> int:
        before = self.agent.num_timesteps
        self.agent.learn(before + self.steps)  # a total since the run's start, as the Agent protocol counts
        return self.agent.num_timesteps - before


RUNNERS: dict[str, Callable[[Setting], Runner]] = {
    OURS: Ours,
    "SB3 PPO, adapter": lambda s: SB3(s, adapter=True),
    "SB3 PPO, plain": lambda s: SB3(s, adapter=False),
    "TorchRL PPO": TorchRL,
}


def run_rounds(
    runners: dict[str, Runner], schedule: list[str], rounds: int, threads: int
) -> dict[str, list[tuple[float, int]]]:
    """A warm-up round (each runner once, not kept), then ``rounds`` rounds that run ``schedule`` in order.

    A name may appear several times in the schedule; a round keeps its fastest iteration (on a shared
    machine the least noisy estimate of a fixed workload). Returns ``(seconds, env steps)`` per runner
    and timed round.
    """
    times: dict[str, list[tuple[float, int]]] = {name: [] for name in runners}
    for round_ in range(rounds + 1):
        line, best = [], {}
        for name in schedule if round_ else list(runners):
            torch.set_num_threads(threads)  # a library could have changed it
            gc.collect()
            start = time.perf_counter()
            steps = runners[name].iterate()
            elapsed = time.perf_counter() - start
            if steps <= 0:
                raise RuntimeError(f"{name} took no env steps in an iteration: its learn() call did nothing")
            best[name] = min(best.get(name, (elapsed, steps)), (elapsed, steps))
            line.append(f"{name} {elapsed:.2f}s/{steps}")
        if round_:
            for name, t in best.items():
                times[name].append(t)
        print(f"  round {round_}{' (warm-up)' if round_ == 0 else ''}: " + ", ".join(line), flush=True)
    return times


def per_kilostep(t: tuple[float, int]) -> float:
    return t[0] / t[1] * 1000


Times = dict[tuple[str, int], list[tuple[float, int]]]  # (runner, tokens) -> (seconds, env steps) per round


def cost_table(times: Times, tokens: int) -> list[str]:
    ours = times[OURS, tokens]
    rows = [
        "| runner | time per 1,000 env steps vs our PPO | seconds per 1,000 env steps (absolute) |",
        "| --- | --- | --- |",
    ]
    for name in RUNNERS:
        t = times[name, tokens]
        ratio = statistics.median(per_kilostep(a) / per_kilostep(b) for a, b in zip(t, ours, strict=True))
        rows.append(f"| {name} | {ratio:.2f}x | {statistics.median(map(per_kilostep, t)):.2f} |")
    return rows


def budget_table(times: Times, budgets: tuple[int, int], names: list[str]) -> list[str]:
    short, long = budgets
    rows = [
        f"| runner | s/iteration at {long} tokens / at {short} (linear: <= {long / short:.1f}) "
        f"| seconds per iteration at {short} (absolute) | at {long} (absolute) |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        a, b = times[name, short], times[name, long]
        ratio = statistics.median(y[0] / x[0] for x, y in zip(a, b, strict=True))
        rows.append(
            f"| {name} | {ratio:.2f} | {statistics.median(x[0] for x in a):.2f} "
            f"| {statistics.median(x[0] for x in b):.2f} |"
        )
    return rows


def describe(s: Setting, rounds: int) -> str:
    return (
        f"{s.env_id}, {s.bundle.name}: {s.envs} envs, {s.epochs} epoch(s), {s.minibatches} minibatches, "
        f"kl_coef {s.kl_coef}; median of {rounds} timed round(s) after a warm-up round (each runner's "
        "fastest iteration in a round)"
    )


def model_sections(
    label: str, s: Setting, budgets: tuple[int, int], budget_names: list[str], steps: int, threads: int
) -> list[str]:
    """Every runner at ``s.tokens`` (the cost table) and ``budget_names`` also at the longer budget, all
    interleaved in the same rounds; the budget table compares each of those at the two budgets."""
    short, long = budgets
    rounds = max(1, math.ceil(steps / s.steps_per_iteration))
    wanted = [(name, short) for name in RUNNERS] + [(name, long) for name in budget_names]
    print(f"\n{label}: {describe(s, rounds)}; {short} and {long} tokens per episode", flush=True)
    runners = {f"{name} @{T}": RUNNERS[name](replace(s, tokens=T)) for name, T in wanted}
    # The cheap runners at the short budget (our PPO, the adapter) run again before each slow one, so that
    # each round holds several of their iterations to take the fastest of, and they sit next to the slow
    # ones in time; everything else runs once per round.
    cheap = [f"{OURS} @{short}", f"SB3 PPO, adapter @{short}"]
    slow = [f"SB3 PPO, plain @{short}", f"TorchRL PPO @{short}"]
    schedule = [*cheap, slow[0], *cheap, slow[1], *(name for name in runners if name not in cheap + slow)]
    flat = run_rounds(runners, schedule, rounds, threads)
    del runners
    gc.collect()
    times: Times = {(name, T): flat[f"{name} @{T}"] for name, T in wanted}
    return [
        f"### {label}: cost per env step",
        "",
        f"{describe(s, rounds)}; {short} tokens per episode ({short * s.envs} env steps per iteration).",
        "",
        *cost_table(times, short),
        "",
        f"### {label}: growth with the generation budget",
        "",
        f"The same rounds, {short} and {long} tokens per episode.",
        "",
        *budget_table(times, budgets, budget_names),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="toy task only, fewer steps")
    parser.add_argument(
        "--default-model",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the default model, SmolLM2-135M on Sentiment-v0 (default: on; off with --quick)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed env steps per runner, toy task (default 1024; quick 512)",
    )
    parser.add_argument(
        "--default-steps",
        type=int,
        default=192,
        help="timed env steps per runner, default model (192: three timed rounds of 64)",
    )
    parser.add_argument("--envs", type=int, default=16, help="envs (episodes per iteration), toy task")
    parser.add_argument("--epochs", type=int, default=4, help="PPO epochs, toy task")
    parser.add_argument("--minibatches", type=int, default=4, help="minibatches per epoch, toy task")
    parser.add_argument("--default-envs", type=int, default=4, help="envs, default model")
    parser.add_argument("--default-epochs", type=int, default=1, help="PPO epochs, default model")
    parser.add_argument("--default-minibatches", type=int, default=2, help="minibatches, default model")
    parser.add_argument(
        "--budgets",
        type=int,
        nargs=2,
        default=[16, 32],
        help="the two generation budgets; the cost tables use the first",
    )
    parser.add_argument(
        "--default-plain-budget",
        action="store_true",
        help="time plain SB3 at the second budget on the default model too (several minutes more)",
    )
    parser.add_argument("--kl-coef", type=float, default=0.05, help="for every runner")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for every runner (1: OpenMP's spinning threads slow small ops 10-100x on a "
        "shared machine whose cores are busy)",
    )
    args = parser.parse_args()
    default_model = (not args.quick) if args.default_model is None else args.default_model
    steps = args.steps if args.steps is not None else (512 if args.quick else 1024)
    for m, b in ((args.minibatches, args.envs), (args.default_minibatches, args.default_envs)):
        if b % m:
            parser.error(f"the minibatch count {m} must divide the env count {b}")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    budgets = (args.budgets[0], args.budgets[1])
    toy = Setting(
        TOY_ENV, CopyTask().build_model(), args.envs, budgets[0], args.epochs, args.minibatches, args.kl_coef
    )
    everything = [OURS, "SB3 PPO, adapter", "SB3 PPO, plain"]
    report = model_sections("Toy task", toy, budgets, everything, steps, args.threads)
    if default_model:
        real = Setting(
            DEFAULT_ENV,
            load_model("default"),
            args.default_envs,
            budgets[0],
            args.default_epochs,
            args.default_minibatches,
            args.kl_coef,
        )
        names = everything if args.default_plain_budget else everything[:2]
        report += [
            "",
            *model_sections("Default model", real, budgets, names, args.default_steps, args.threads),
        ]

    import stable_baselines3
    import torchrl

    wall = time.perf_counter() - start
    print(
        f"\nstable-baselines3 {stable_baselines3.__version__}, torchrl {torchrl.__version__}, torch "
        f"{torch.__version__}, fp32 on CPU, {args.threads} torch thread(s); wall time {wall:.0f} s"
    )
    print(
        f"Every runner at kl_coef {args.kl_coef}; plain SB3 runs without TextgymCallback, so its reward "
        "lacks the -beta log pi term (the same work).\n"
        "Episodes end at EOS or at the generation budget, as in training.\n"
    )
    print("\n".join(report))


if __name__ == "__main__":
    main()
