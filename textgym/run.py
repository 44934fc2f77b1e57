"""A training run in a folder of its own: what ``textgym train`` writes and ``textgym compare`` repeats.

A run trains one agent on one env with one seed for ``timesteps`` env steps (generated tokens), in
``checkpoints`` equal chunks. After each chunk it evaluates the agent on held-out prompts (the same
prompts at every point and in every run), saves the agent, then records the point, so a run stopped at
any moment (Ctrl-C, a crash) resumes from its last recorded point. textgym's own agents (and any agent
whose ``learn`` is a function of its saved state, as the Agent protocol asks) then continue the
identical curve. The folder::

    config.yaml       the run's settings, the agent's resolved options, package and library versions
    logs/             the agent's training metrics (TensorBoard, progress.csv) when it takes ``log_dir``
    checkpoints/      the agent's ``save`` at the last recorded point
    curve.csv         one row per point: env steps, held-out score, KL, ..., wall time
    state.json        the last recorded point and its checkpoint
    evaluation.json   the final held-out evaluation with its completions (written last: the run is done)
    samples.md        a few of those completions
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.metadata
import inspect
import json
import os
import platform
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from textgym import distributed
from textgym.agent import AGENTS, agent_class, agent_options, check_settings, make_agent
from textgym.agents.checkpoint import is_plain
from textgym.evaluation import Evaluation, evaluate
from textgym.models import resolve_device

LIBRARIES = (
    "textgym",
    "torch",
    "transformers",
    "gymnasium",
    "numpy",
    "stable-baselines3",
    "sb3-contrib",
    "torchrl",
    "trl",
)
CURVE_FIELDS = (
    "env_steps",
    "score",
    "score_stderr",
    "kl",
    "length",
    "eos_rate",
    "distinct_2",
    "perplexity",
    "wall_time",
)


class RunError(ValueError):
    """A run folder that cannot be used as asked: occupied, not a run, or asked to resume differently."""


@dataclass
class RunConfig:
    """What a run trains and how it measures it; ``config.yaml`` holds these fields."""

    env: str  # a registered id, e.g. "textgym/Sentiment-v0"
    agent: str  # a name in textgym.AGENTS or an import string "pkg.module:Class"
    model: str | None = None  # the policy's starting model; None: the env's own
    seed: int = 0
    timesteps: int = 8192  # training budget in env steps (generated tokens), the same unit for every agent
    checkpoints: int = 8  # points on the curve after step 0; a checkpoint and a held-out evaluation each
    eval_episodes: int = 32  # held-out episodes per point, on the test split
    eval_seed: int = 0  # the held-out prompts and sampling: the same for every run
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # the env's arguments (kl_coef=0.1, ...)
    settings: dict[str, Any] = field(default_factory=dict)  # the agent's own options

    def targets(self) -> list[int]:
        """The env-step totals after each chunk."""
        n = max(1, min(self.checkpoints, self.timesteps))
        return [round(self.timesteps * (i + 1) / n) for i in range(n)]


def versions() -> dict[str, str]:
    """The Python, package and library versions a run used (those installed)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def read_config(folder: str | os.PathLike[str]) -> RunConfig:
    """The :class:`RunConfig` in a run folder's ``config.yaml``."""
    path = Path(folder) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{str(folder)!r} is not a run folder: it has no config.yaml")
    data = yaml.safe_load(path.read_text())
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in data.items() if k in names})


def is_done(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / "evaluation.json").is_file()


def read_curve(folder: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The points of ``curve.csv``; env steps stay integers, so a resumed run rewrites them as written."""
    path = Path(folder) / "curve.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    # int(float()): curves written before this rule hold "5341.0"
    return [{k: int(float(v)) if k == "env_steps" else float(v) for k, v in row.items()} for row in rows]


def train(
    config: RunConfig,
    folder: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    reference: Evaluation | None = None,
) -> Evaluation:
    """Train ``config``'s agent into ``folder`` and return its final held-out evaluation.

    Args:
        resume: continue the run in ``folder`` from its last recorded point (a finished run is returned
            as it is). ``config`` must then be the one the folder holds.
        overwrite: delete what ``folder`` holds and start over.
        progress: progress bars (the run's over env steps, and the agent's own when it has one).
        reference: the zero-shot reference's evaluation on the run's held-out prompts, if at hand. An
            agent with an ``lm`` that starts from the env's own model (``config.model`` None) samples
            exactly what the reference samples, so this is its step-0 point and is not recomputed.

    Under a launcher (``torchrun --nproc-per-node N -m textgym train ...``) every rank trains its share of
    each batch and rank 0 alone evaluates and writes the folder; every rank returns the evaluation.

    Raises:
        RunError: ``folder`` holds files and neither ``resume`` nor ``overwrite`` is given; or it holds
            another run than ``config``; or a launcher started an agent that does not train data-parallel.
        ValueError: an unknown agent or setting, naming the close matches.
    """
    folder = Path(folder)
    cls = agent_class(config.agent)
    check_settings(cls, config.settings)
    if distributed.launched():
        if not getattr(cls, "data_parallel", False):
            raise RunError(
                f"agent {config.agent!r} does not train data-parallel: run it without torchrun (textgym's "
                f"own agents, reinforce and ppo, do)"
            )
        distributed.init(resolve_device(str(config.settings.get("device", "auto"))))
    progress = progress and distributed.is_main()
    return distributed.broadcast(_train(config, folder, cls, resume, overwrite, progress, reference))


def _train(
    config: RunConfig,
    folder: Path,
    cls: type,
    resume: bool,
    overwrite: bool,
    progress: bool,
    reference: Evaluation | None,
) -> Evaluation | None:
    """:func:`train` on this rank; ``None`` on ranks other than 0, which only train."""
    main = distributed.is_main()
    problem, state = None, None
    if main:  # rank 0 checks and makes the folder; every rank hears what it found
        try:
            state = _prepare(config, folder, resume, overwrite)
        except RunError as exc:
            problem = str(exc)
    problem, state = distributed.broadcast((problem, state))
    if problem is not None:
        raise RunError(problem)
    if state is not None and state.get("done"):
        return Evaluation.from_json(folder / "evaluation.json") if main else None

    settings = dict(config.settings)
    if _takes(cls, "log_dir"):
        settings.setdefault("log_dir", str(folder / "logs"))
    if state is None:
        if main:
            _write_config(config, cls, settings, folder)
        _seed_everything(config.seed)
        if config.env_kwargs:  # beyond the protocol's constructor: only when asked for
            settings["env_kwargs"] = config.env_kwargs
        agent = make_agent(cls, config.env, model=config.model, seed=config.seed, **settings)
        same = (
            reference is not None
            and config.model is None
            and isinstance(getattr(agent, "lm", None), torch.nn.Module)
        )
        curve = [_point(0, reference if same else _evaluate(agent, config), 0.0)] if main else []
        if main:
            _write_curve(folder, curve)
        elapsed = 0.0
    else:
        agent = cls.load(folder / state["checkpoint"])
        _restore_rngs(folder / state["rngs"])
        curve = read_curve(folder)[: state["points"]] if main else []
        elapsed = state["wall_time"]

    targets = config.targets()
    done = state["points"] - 1 if state is not None else 0  # chunks trained
    bar = tqdm(
        total=config.timesteps,
        initial=targets[done - 1] if done else 0,
        unit="tok",
        disable=not progress,
        desc=f"{config.agent} seed {config.seed}",
    )
    learn_kwargs = {"progress_bar": progress} if _takes(agent.learn, "progress_bar") else {}
    evaluation = None
    state_path = folder / "state.json"
    try:
        for i in range(done, len(targets)):
            start = time.perf_counter()
            agent.learn(total_timesteps=targets[i], **learn_kwargs)
            elapsed += time.perf_counter() - start
            if not main:
                continue
            # Evaluate before saving: an agent that samples from its own generator in predict() then
            # saves the state a resumed run continues from.
            evaluation = _evaluate(agent, config)
            curve.append(_point(int(getattr(agent, "num_timesteps", targets[i])), evaluation, elapsed))
            # Save, then record: a crash between the two redoes this chunk, never skips it.
            state = {**_save(agent, folder, i + 1), "points": len(curve), "wall_time": elapsed}
            _write_curve(folder, curve)
            _write_json(state_path, state)
            _remove_old_checkpoints(folder, state)
            bar.update(targets[i] - bar.n)
            bar.set_postfix(score=f"{evaluation.score:.3f}", kl=f"{evaluation.kl:.2f}")
    finally:
        bar.close()
    if not main:
        return None
    if done == len(targets):  # stopped after its last point was recorded, before the files below
        evaluation = _evaluate(agent, config)
    _write_samples(folder / "samples.md", evaluation, config)
    evaluation.to_json(folder / "evaluation.json")
    return evaluation


def _prepare(config: RunConfig, folder: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check and make ``folder`` for ``config``; the state of the run it holds (``done`` when finished)."""
    occupied = folder.is_dir() and any(folder.iterdir())
    if occupied and overwrite:
        shutil.rmtree(folder)
    elif occupied and not resume:
        raise RunError(
            f"{str(folder)!r} already holds files: pass --resume to continue that run or --overwrite to "
            f"replace it"
        )
    elif occupied and (folder / "config.yaml").is_file():
        held = read_config(folder)
        if held != config:
            diff = {k: (v, getattr(config, k)) for k, v in asdict(held).items() if getattr(config, k) != v}
            raise RunError(f"{str(folder)!r} holds another run; (held, asked) differ in {diff}")
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if state is not None and is_done(folder):
        state["done"] = True
    return state


def _takes(fn: Any, name: str) -> bool:
    """Whether a class (its settings) or a function (its parameters) takes ``name``."""
    if isinstance(fn, type):
        return any(o.name == name for o in agent_options(fn) or [])
    return name in inspect.signature(fn).parameters


def reference_kwargs(config: RunConfig) -> dict[str, Any]:
    """The env argument that makes a run's reference its starting model, as the agent's training env has
    it: evaluations of the run measure KL to what it trained against."""
    return {"model": config.model} if config.model is not None else {}


def _evaluate(agent: Any, config: RunConfig) -> Evaluation:
    env_kwargs = {**reference_kwargs(config), **config.env_kwargs}
    return evaluate(agent, config.env, config.eval_episodes, seed=config.eval_seed, num_envs=8, **env_kwargs)


def _point(steps: int, evaluation: Evaluation, wall_time: float) -> dict[str, float]:
    figures = evaluation.summary()
    return {"env_steps": steps, **{k: figures[k] for k in CURVE_FIELDS[1:-1]}, "wall_time": wall_time}


def _write_config(config: RunConfig, cls: type, settings: dict[str, Any], folder: Path) -> None:
    options = agent_options(cls) or []
    resolved = {o.name: o.default for o in options if is_plain(o.default)} | {
        k: v for k, v in settings.items() if is_plain(v)
    }
    data = {
        **asdict(config),
        "agent_class": f"{cls.__module__}:{cls.__qualname__}",
        "resolved": resolved,
        "versions": versions(),
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _write_curve(folder: Path, curve: list[dict[str, float]]) -> None:
    tmp = folder / "curve.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(curve)
    os.replace(tmp, folder / "curve.csv")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _save(agent: Any, folder: Path, point: int) -> dict[str, str]:
    """Save the agent and the global generators at ``point``; the files' paths, relative to ``folder``."""
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    agent.save(checkpoints / f"point-{point}")
    # Some libraries add a suffix (SB3 writes point-N.zip).
    written = [p for p in checkpoints.glob(f"point-{point}*") if not p.name.endswith(".tmp")]
    if len(written) != 1:
        raise RunError(
            f"{type(agent).__name__}.save wrote {written} for checkpoints/point-{point}: expected 1"
        )
    rngs = checkpoints / f"rngs-{point}.pt"
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, rngs)
    return {"checkpoint": str(written[0].relative_to(folder)), "rngs": str(rngs.relative_to(folder))}


def _restore_rngs(path: Path) -> None:
    state = torch.load(path, weights_only=False)  # our own file: NumPy's and Python's states are tuples
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _remove_old_checkpoints(folder: Path, state: dict[str, Any]) -> None:
    keep = {folder / state["checkpoint"], folder / state["rngs"]}
    for path in (folder / "checkpoints").iterdir():
        if path not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _write_samples(path: Path, evaluation: Evaluation, config: RunConfig, count: int = 8) -> None:
    lines = [f"# {config.agent} on {config.env}, seed {config.seed}: held-out samples", ""]
    for prompt, completion, score in list(
        zip(evaluation.prompts, evaluation.completions, evaluation.scores, strict=True)
    )[:count]:
        lines += [f"**Prompt:** {prompt!r}", "", f"**Completion** (score {score:.3f}): {completion!r}", ""]
    path.write_text("\n".join(lines))


def load_agent(path: str | os.PathLike[str], agent: str | None = None) -> Any:
    """The agent saved at ``path``: a run folder (its last checkpoint), or a checkpoint file.

    A checkpoint inside a run folder knows its agent from ``config.yaml``; a loose one of textgym's own
    format names its class; any other needs ``agent`` (a name or import string).
    """
    path = Path(path)
    if (path / "config.yaml").is_file():
        state = json.loads((path / "state.json").read_text()) if (path / "state.json").is_file() else None
        if state is None:
            raise RunError(f"run {str(path)!r} has no checkpoint yet")
        return agent_class(agent or read_config(path).agent).load(path / state["checkpoint"])
    if not path.exists():
        raise FileNotFoundError(f"no run folder or checkpoint at {str(path)!r}")
    if agent is None and (path.parent.parent / "config.yaml").is_file():
        agent = read_config(path.parent.parent).agent
    if agent is None:
        agent = _agent_of_checkpoint(path)
    return agent_class(agent).load(path)


def _agent_of_checkpoint(path: Path) -> str:
    """The built-in agent a textgym checkpoint file names, or a RunError asking for ``agent``."""
    try:
        name = torch.load(path, map_location="cpu", weights_only=True).get("agent")
    except Exception:  # a zip of SB3's, or no checkpoint at all: the loader says which
        name = None
    for key, spec in AGENTS.items():
        if name is not None and spec.endswith(f":{name}"):
            return key
    raise RunError(f"cannot tell which agent saved {str(path)!r}: name it (--agent, e.g. 'sb3-ppo')")
