"""Every script in examples/ runs, and does what it says."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_every_example_is_covered():
    tested = {"custom_agent.py", "evaluate_default_model.py", "train_agent.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_custom_agent_gets_the_exact_shaped_reward():
    steps = load("custom_agent.py")["run"](seed=3)
    assert steps and "score" in steps[-1]
    for step in steps:
        shaped = -0.1 * (step["logprob"] - step["ref_logprob"])
        assert step["reward"] == pytest.approx(shaped + step.get("score", 0.0), abs=1e-5)
        assert step["kl"] == pytest.approx(step["logprob"] - step["ref_logprob"], abs=1e-6)


@pytest.mark.slow
def test_main_job_on_the_default_model(monkeypatch, capsys):
    """The README's main job, on the real default model (smaller: one task, 8 episodes)."""
    monkeypatch.setattr(
        sys, "argv", ["x", "--tasks", "textgym/Copy-v0", "--episodes", "8", "--num-envs", "4"]
    )
    load("evaluate_default_model.py")["main"]()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| `textgym/Copy-v0`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == 8 and 0.0 <= float(cells[2].split()[0]) <= 1.0
    assert float(cells[-1]) > 1.0  # the reference's perplexity of real samples


def test_train_agent_improves_the_held_out_score(tmp_path):
    results = load("train_agent.py")["main"](
        ["--algo", "ppo", "--env", "textgym/Pattern-v0", "--episodes", "1600", "--eval-episodes", "32",
         "--lr", "3e-4", "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    assert results["after"].score > results["before"].score + 0.2
    assert (tmp_path / "logs" / "progress.csv").exists() and (tmp_path / "checkpoints" / "last.pt").exists()


def test_train_agent_passes_config_fields_to_the_agent(tmp_path):
    main = load("train_agent.py")["main"]
    common = ["--env", "textgym/Copy-v0", "--eval-episodes", "4", "--batch-size", "4", "--no-progress"]
    main([*common, "--episodes", "8", "--out", str(tmp_path), "--config", "gae_lambda=1.0", "n_epochs=1"])
    config = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["config"]
    assert config["gae_lambda"] == 1.0 and config["n_epochs"] == 1 and config["batch_size"] == 4
    with pytest.raises(TypeError, match=r"unknown PPOConfig field\(s\) \['lamda'\]"):
        main([*common, "--episodes", "4", "--out", str(tmp_path), "--config", "lamda=1.0"])
