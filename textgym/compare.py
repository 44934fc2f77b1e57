"""Several agents across seeds on one env at the same sample budget: ``textgym compare``.

Every (agent, seed) is a run of :mod:`textgym.run` in ``OUT/runs/<agent>-seed<k>/``, trained for the same
number of env steps (generated tokens). The budget counts samples, not compute: PPO's epochs reuse the
tokens it sampled and cost no budget, so it spends more time per token, which the wall-clock and
tokens-per-second columns show. Runs go in parallel processes, each pinned to its share of the cores
(one GPU each on a multi-GPU machine); a finished run is never redone, and a stopped one resumes from its
last checkpoint. Then ``OUT`` gets:

- ``results.md`` and ``results.csv``: per agent, the mean across seeds with a 95% Student-t interval
  (``mean ± t(0.975, n-1) * sd / sqrt(n)``) of the final held-out score, KL, distinct-2 and perplexity,
  the wall-clock time per run and the training tokens per second, below the zero-shot reference's row;
- ``curves.png``: held-out score and KL against env steps, one line per agent (the mean across seeds)
  shaded one standard error across seeds;
- ``samples.md``: each agent's completions (seed 0) of the same held-out prompts, beside the reference's.
"""

from __future__ import annotations

import csv
import difflib
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats
from tqdm.auto import tqdm

from textgym.agent import agent_class, agent_options
from textgym.evaluation import Evaluation, evaluate
from textgym.run import RunConfig, RunError, is_done, read_curve
from textgym.run import train as train_run

METRICS = ("score", "kl", "distinct_2", "perplexity")


@dataclass
class Comparison:
    """What ``compare`` trains: the agents, each with its own settings, on ``seeds`` seeds of ``run``."""

    run: RunConfig  # the env, budget and evaluation every run shares; its agent and settings are unused
    agents: dict[str, dict[str, Any]]  # agent name -> its settings
    seeds: int = 3

    def runs(self) -> dict[str, RunConfig]:
        """Run folder name -> the run."""
        return {
            f"{folder_name(agent)}-seed{seed}": replace(self.run, agent=agent, seed=seed, settings=settings)
            for agent, settings in self.agents.items()
            for seed in range(self.seeds)
        }


def folder_name(agent: str) -> str:
    """A folder name for an agent name or import string."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", agent)


def split_settings(agents: list[str], items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each agent's settings from ``KEY`` (every agent that takes it) and ``AGENT.KEY`` (that one) items.

    Raises:
        ValueError: a key no agent takes, or an ``AGENT.`` prefix naming no agent of the comparison.
    """
    settings: dict[str, dict[str, Any]] = {agent: {} for agent in agents}
    for key, value in items.items():
        prefix, dot, name = key.rpartition(".")
        if dot and prefix not in settings and ":" not in key:
            raise ValueError(f"setting {key!r} names agent {prefix!r}, which is not one of {agents}")
        targets = [prefix] if dot and prefix in settings else agents
        name = name if dot and prefix in settings else key
        takers = [a for a in targets if _takes(a, name)]
        if not takers:
            known = {o.name for a in targets for o in agent_options(agent_class(a)) or []}
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"no agent of {targets} takes the setting {name!r}{hint}")
        for agent in takers:
            settings[agent][name] = value
    return settings


def _takes(agent: str, name: str) -> bool:
    options = agent_options(agent_class(agent))
    return options is None or any(o.name == name for o in options)


def compare(
    comparison: Comparison,
    out: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> str:
    """Train every run of ``comparison`` into ``out`` (resuming what is there) and write the reports.

    Args:
        jobs: runs at a time, each in its own process pinned to ``cores / jobs`` cores (one GPU each with
            several GPUs; more jobs than cores share them all, a thread each); 0 trains them one by one in
            this process. None: one per core, or per GPU.
        overwrite: start over, deleting the runs ``out`` holds.

    Returns:
        ``results.md``'s text.

    Raises:
        RunError: ``out`` holds a comparison of other settings or more seeds (without ``overwrite``), or
            runs failed (after the others finished; their ``train.log`` says why). A comparison of the
            same settings with fewer seeds is extended: only the new seeds train.
    """
    out = Path(out)
    if overwrite:
        for name in ("runs", "reference"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    request = out / "comparison.yaml"
    wanted = {"run": asdict(comparison.run), "agents": comparison.agents, "seeds": comparison.seeds}
    held = yaml.safe_load(request.read_text()) if request.is_file() and not overwrite else wanted
    # More seeds of the same settings extend it: the finished seeds are runs of the new comparison too.
    if {**held, "seeds": 0} != {**wanted, "seeds": 0} or held["seeds"] > wanted["seeds"]:
        raise RunError(
            f"{str(out)!r} holds a comparison of other settings ({request}, {held['seeds']} seeds; the same "
            f"settings with at least as many seeds extend it): pass --overwrite to replace it, or another "
            f"--out"
        )
    request.write_text(yaml.safe_dump(wanted, sort_keys=False))
    runs = comparison.runs()
    _reference(comparison.run, out / "reference")
    pending = {name: run for name, run in runs.items() if not is_done(out / "runs" / name)}
    failed = _train_all(pending, out, jobs, progress)
    if failed:
        logs = ", ".join(str(out / "runs" / name / "train.log") for name in failed)
        raise RunError(f"{len(failed)} run(s) failed: {sorted(failed)}; see {logs}")
    return report(comparison, out)


def _reference(run: RunConfig, folder: Path) -> Evaluation:
    path = folder / "evaluation.json"
    if path.is_file():
        return Evaluation.from_json(path)
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = evaluate(
        "reference", run.env, run.eval_episodes, seed=run.eval_seed, num_envs=8, **run.env_kwargs
    )
    evaluation.to_json(path)
    return evaluation


# ------------------------------------------------------------------------------------------- running
def plan_jobs(jobs: int | None, runs: int) -> list[dict[str, str]]:
    """One environment per concurrent job: the cores it is pinned to, its threads, its GPU."""
    import torch

    gpus = torch.cuda.device_count()
    cores = (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )
    if jobs is None:
        jobs = gpus or len(cores)
    jobs = max(1, min(jobs, runs))
    share = len(cores) // jobs
    plans = []
    for j in range(jobs):
        # More jobs than cores: one thread each on all of them, so the scheduler balances them (pinning
        # jobs 0 and 2 to core 0 would leave job 1's core idle once it finishes). Three runs on two cores
        # then end together instead of two, then one on a core alone.
        mine = cores[j * share : (j + 1) * share] if share else cores
        plan = {"TEXTGYM_CORES": ",".join(map(str, mine)), "OMP_NUM_THREADS": str(max(share, 1))}
        if gpus:
            plan["CUDA_VISIBLE_DEVICES"] = str(j % gpus)
        plans.append(plan)
    return plans


def _train_all(runs: dict[str, RunConfig], out: Path, jobs: int | None, progress: bool) -> set[str]:
    """Train ``runs`` into ``out/runs/<name>``; the names of those that failed."""
    folder, reference = out / "runs", out / "reference" / "evaluation.json"
    total = sum(run.timesteps for run in runs.values())
    bar = tqdm(total=total, unit="tok", disable=not progress or not runs, desc=f"{len(runs)} runs")
    failed: set[str] = set()
    if jobs == 0:  # in this process, one by one
        for name, run in runs.items():
            bar.set_postfix_str(name)
            train_run(
                run, folder / name, resume=True, progress=False, reference=Evaluation.from_json(reference)
            )
            bar.update(run.timesteps)
        bar.close()
        return failed
    queue = list(runs.items())
    free = plan_jobs(jobs, len(runs))
    running: dict[str, tuple[subprocess.Popen, dict[str, str]]] = {}
    try:
        while queue or running:
            while queue and free:
                name, run = queue.pop(0)
                plan = free.pop()
                running[name] = (_launch(run, folder / name, reference, plan), plan)
            time.sleep(1.0)
            for name, (process, plan) in list(running.items()):
                if process.poll() is not None:
                    del running[name]
                    free.append(plan)
                    if process.returncode != 0:
                        failed.add(name)
            bar.update(sum(_steps_done(folder / name, run) for name, run in runs.items()) - bar.n)
            bar.set_postfix_str(", ".join(running) or "done")
    except KeyboardInterrupt:
        # The children got the same SIGINT and stop at their own pace, keeping their last checkpoint.
        for process, _ in running.values():
            process.wait()
        raise
    finally:
        bar.close()
    return failed


def _launch(run: RunConfig, folder: Path, reference: Path, plan: dict[str, str]) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request.yaml").write_text(yaml.safe_dump(asdict(run), sort_keys=False))
    cores = {int(c) for c in plan["TEXTGYM_CORES"].split(",")}
    log = (folder / "train.log").open("a")
    return subprocess.Popen(
        [sys.executable, "-m", "textgym.compare", str(folder), str(reference)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **plan, "MKL_NUM_THREADS": plan["OMP_NUM_THREADS"]},
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if hasattr(os, "sched_setaffinity") else None,
    )


def _steps_done(folder: Path, run: RunConfig) -> int:
    if is_done(folder):
        return run.timesteps
    curve = read_curve(folder)
    return run.targets()[len(curve) - 2] if len(curve) > 1 else 0


# ------------------------------------------------------------------------------------------- reports
def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval; with one value the interval is the value itself."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def report(comparison: Comparison, out: str | os.PathLike[str]) -> str:
    """Write ``results.md``, ``results.csv``, ``curves.png`` and ``samples.md`` from the finished runs."""
    out = Path(out)
    reference = Evaluation.from_json(out / "reference" / "evaluation.json")
    finals: dict[str, list[Evaluation]] = {}
    curves: dict[str, list[list[dict[str, float]]]] = {}
    costs: dict[str, list[tuple[float, float]]] = {}  # (wall seconds, tokens per second) per run
    for name, run in comparison.runs().items():
        folder = out / "runs" / name
        finals.setdefault(run.agent, []).append(Evaluation.from_json(folder / "evaluation.json"))
        curve = read_curve(folder)
        curves.setdefault(run.agent, []).append(curve)
        wall = curve[-1]["wall_time"]
        costs.setdefault(run.agent, []).append(
            (wall, curve[-1]["env_steps"] / wall if wall else float("nan"))
        )
    rows = [_row("zero-shot reference", [reference], None)]
    rows += [_row(agent, finals[agent], costs[agent]) for agent in comparison.agents]
    _write_csv(out / "results.csv", rows)
    text = _markdown(comparison, rows)
    (out / "results.md").write_text(text)
    plot_curves(curves, reference, comparison.run, out / "curves.png")
    _write_samples(out / "samples.md", reference, {a: finals[a][0] for a in comparison.agents})
    return text


def _row(name: str, evaluations: list[Evaluation], costs: list[tuple[float, float]] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"policy": name, "seeds": len(evaluations) if costs else 0}
    for metric in METRICS:
        values = [getattr(e, metric) for e in evaluations]
        if costs is None:  # one evaluation: its interval is over episodes (the score's s.e.)
            e = evaluations[0]
            half = 1.96 * e.score_stderr if metric == "score" else 0.0
            row |= {metric: values[0], f"{metric}_low": values[0] - half, f"{metric}_high": values[0] + half}
        else:
            mean, low, high = interval(values)
            row |= {metric: mean, f"{metric}_low": low, f"{metric}_high": high}
    row["wall_seconds"] = float(np.mean([c[0] for c in costs])) if costs else float("nan")
    row["tokens_per_second"] = float(np.mean([c[1] for c in costs])) if costs else float("nan")
    return row


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _markdown(comparison: Comparison, rows: list[dict[str, Any]]) -> str:
    run = comparison.run
    lines = [
        f"Held-out figures on {run.env}: {run.timesteps} training env steps (generated tokens) per run, "
        f"{comparison.seeds} seeds per agent, {run.eval_episodes} test-split episodes per evaluation. "
        "Mean across seeds [95% t-interval]; the reference is one evaluation (its score's interval is "
        "1.96 s.e. over episodes). KL in nats per episode; wall clock per run (training only).",
        "",
        "| policy | seeds | score | KL | distinct-2 | perplexity | wall clock | tokens/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [f"{r[m]:.3f} [{r[f'{m}_low']:.3f}, {r[f'{m}_high']:.3f}]" for m in METRICS[:3]]
        cells.append(f"{r['perplexity']:.2f} [{r['perplexity_low']:.2f}, {r['perplexity_high']:.2f}]")
        wall = "" if math.isnan(r["wall_seconds"]) else f"{r['wall_seconds'] / 60:.1f} min"
        speed = "" if math.isnan(r["tokens_per_second"]) else f"{r['tokens_per_second']:.1f}"
        lines.append(f"| {r['policy']} | {r['seeds'] or ''} | {' | '.join(cells)} | {wall} | {speed} |")
    return "\n".join(lines) + "\n"


def plot_curves(
    curves: dict[str, list[list[dict[str, float]]]], reference: Evaluation, run: RunConfig, path: Path
) -> None:
    """Held-out score and KL against env steps: the mean across seeds, shaded one standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (score_ax, kl_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for agent, seeds in curves.items():
        points = min(len(c) for c in seeds)
        steps = np.mean([[row["env_steps"] for row in c[:points]] for c in seeds], axis=0)
        for ax, metric in ((score_ax, "score"), (kl_ax, "kl")):
            values = np.array([[c[i][metric] for i in range(points)] for c in seeds])  # (seeds, points)
            mean = values.mean(0)
            # One standard error across seeds (with two seeds, their range): the tables give the
            # 95% intervals, whose t-factor at two or three seeds would fill the picture.
            half = values.std(0, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.zeros(points)
            low, high = mean - half, mean + half
            (line,) = ax.plot(steps, mean, label=f"{agent} ({len(seeds)} seeds)")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    score_ax.axhline(reference.score, color="black", linestyle="--", label="zero-shot reference")
    score_ax.set(xlabel="env steps (generated tokens)", ylabel="held-out score", title=run.env)
    kl_ax.set(
        xlabel="env steps (generated tokens)", ylabel="KL to the reference (nats / episode)", title="KL"
    )
    score_ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write_samples(path: Path, reference: Evaluation, finals: dict[str, Evaluation], count: int = 6) -> None:
    lines = ["# Held-out samples: the same prompts, each agent's seed-0 run", ""]
    for i, prompt in enumerate(reference.prompts[:count]):
        lines += [f"## Prompt {i + 1}", "", f"> {prompt!r}", ""]
        for name, e in {"zero-shot reference": reference, **finals}.items():
            if i < len(e.completions) and e.prompts[i] == prompt:
                lines.append(f"- **{name}** (score {e.scores[i]:.3f}): {e.completions[i]!r}")
        lines.append("")
    path.write_text("\n".join(lines))


def _child(argv: list[str]) -> None:
    """One run of a comparison, in the process ``_launch`` started (pinned to its cores)."""
    folder = Path(argv[0])  # torch takes its thread count from OMP_NUM_THREADS, set by _launch
    run = RunConfig(**yaml.safe_load((folder / "request.yaml").read_text()))
    train_run(run, folder, resume=True, progress=False, reference=Evaluation.from_json(argv[1]))


if __name__ == "__main__":
    _child(sys.argv[1:])
