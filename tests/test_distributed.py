"""Data parallel on torch.distributed: 2 CPU processes with gloo, launched by torchrun as a user would.

The equivalence test gives a single process the two ranks' episodes as one batch (the same global batch
and seed: the same prompts, which a test checks; each rank samples from its own stream) and holds its
update to theirs: the loss, the gradient norm and the weights after the step.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed_worker import COMMON, SETTINGS

from textgym.rollout import Episodes

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_thread")


def torchrun(*args: str) -> subprocess.CompletedProcess:
    # --standalone: a rendezvous on a free local port, so that nothing else on the machine collides.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    path = f"{HERE}:{os.environ.get('PYTHONPATH', '')}"  # the worker imports textgym and its neighbour
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    result = subprocess.run(command, capture_output=True, text=True, env=environ)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def concatenate(parts: list[Episodes], pad_id: int) -> Episodes:
    """The ranks' episodes as one batch: prompts left-padded and completions right-padded to one width."""

    def left(x: torch.Tensor, width: int, fill: int) -> torch.Tensor:
        return torch.nn.functional.pad(x, (width - x.shape[1], 0), value=fill)

    def right(x: torch.Tensor, width: int, fill: float) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=fill)

    P = max(p.prompt_ids.shape[1] for p in parts)
    T = max(p.tokens.shape[1] for p in parts)
    return Episodes(
        prompts=[x for p in parts for x in p.prompts],
        completions=[x for p in parts for x in p.completions],
        scores=np.concatenate([p.scores for p in parts]),
        lengths=np.concatenate([p.lengths for p in parts]),
        stopped=np.concatenate([p.stopped for p in parts]),
        kl=np.concatenate([p.kl for p in parts]),
        prompt_ids=torch.cat([left(p.prompt_ids, P, pad_id) for p in parts]),
        prompt_mask=torch.cat([left(p.prompt_mask, P, 0) for p in parts]),
        tokens=torch.cat([right(p.tokens, T, pad_id) for p in parts]),
        logprobs=torch.cat([right(p.logprobs, T, 0.0) for p in parts]),
        ref_logprobs=torch.cat([right(p.ref_logprobs, T, 0.0) for p in parts]),
        rewards=torch.cat([right(p.rewards, T, 0.0) for p in parts]),
    )


@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_two_processes_update_as_one_process_with_the_whole_batch(algo, tmp_path):
    torchrun(str(HERE / "distributed_worker.py"), algo, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{k}.pt", weights_only=False) for k in range(2)]
    # Every rank took the same step (DDP averaged the gradients) and logged the same global figures.
    for name, value in ranks[0]["weights"]["lm"].items():
        torch.testing.assert_close(ranks[1]["weights"]["lm"][name], value, rtol=0, atol=0)
    assert ranks[0]["metrics"] == ranks[1]["metrics"]

    cls, config = SETTINGS[algo]
    single = cls("textgym/Copy-v1", **COMMON, **config)
    # The global batch's prompts are the single process's, split between the ranks in order.
    assert single.collect(0).prompts == ranks[0]["episodes"].prompts + ranks[1]["episodes"].prompts

    episodes = concatenate([r["episodes"] for r in ranks], single.envs.pad_token_id)
    single.train_mode()
    metrics = single.update(episodes, 0)
    reduced = ranks[0]["metrics"]
    for key in ("loss/policy", "policy/grad_norm", "objective/entropy") + (
        ("loss/value", "policy/approxkl") if algo == "ppo" else ()
    ):
        assert metrics[key] == pytest.approx(reduced[key], rel=1e-4, abs=1e-6), key
    after = single.policy.trainable_state_dict()
    # AdamW's first step is lr * g / (|g| + eps) per weight: where a gradient is near eps (1e-8), float
    # rounding of g (the ranks' batches are computed in other shapes) shows at about 1e-3 of lr.
    step = COMMON["learning_rate"]
    for name, value in after["lm"].items():
        torch.testing.assert_close(ranks[0]["weights"]["lm"][name], value, rtol=1e-4, atol=1e-2 * step)
    # The step moved the weights, so the comparison above is not of two untouched copies.
    start = cls("textgym/Copy-v1", **COMMON, **config).policy.trainable_state_dict()["lm"]
    assert any(not torch.equal(start[n], v) for n, v in after["lm"].items())


def test_textgym_train_learns_under_torchrun(tmp_path):
    """The user's command line, two processes: Pattern-v0 from a fresh tiny model (random play: 0.07).

    Measured: held-out 0.069, 0.165, 0.355, 0.696, 0.905 at 0-40,000 tokens (48 s on 2 cores).
    """
    torchrun(
        "-m", "textgym", "train", "--env", "textgym/Pattern-v0", "--agent", "reinforce",
        "--timesteps", "40000", "--checkpoints", "2", "--eval-episodes", "32",
        "--set", "learning_rate=5e-4", "--set", "batch_size=16", "--set", "num_generations=4",
        "--out", str(tmp_path / "run"), "--no-progress",
    )  # fmt: skip
    with (tmp_path / "run" / "curve.csv").open() as f:
        scores = [float(row["score"]) for row in csv.DictReader(f)]
    assert scores[0] < 0.15
    assert scores[-1] >= 0.6, scores
    assert (tmp_path / "run" / "evaluation.json").is_file()
    # Only rank 0 writes: one TensorBoard file per learn() call (a chunk), not one per rank.
    assert len(list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))) == 2


def test_a_library_agent_under_torchrun_is_refused(monkeypatch, tmp_path):
    from textgym.run import RunConfig, RunError, train

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RunError, match="'sb3-ppo' does not train data-parallel"):
        train(RunConfig(env="textgym/Copy-v1", agent="sb3-ppo"), tmp_path / "run")


def test_resuming_on_another_number_of_processes_continues_with_a_warning(tmp_path):
    cls, config = SETTINGS["reinforce"]
    agent = cls("textgym/Copy-v1", **COMMON, **config)
    agent.learn(total_episodes=8, progress_bar=False)
    path = agent.save(tmp_path / "ckpt.pt")
    state = torch.load(path, weights_only=False)
    assert state["world_size"] == 1
    torch.save({**state, "world_size": 2}, path)  # as rank 0 of a 2-process run writes it
    with pytest.warns(UserWarning, match="saved on 2 process.*on 1: it continues from the same state"):
        resumed = cls.load(path)
    assert resumed.iteration == 1
