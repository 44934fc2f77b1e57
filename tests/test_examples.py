"""Every script in examples/ runs, and does what it says."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from textgym.rewards import SequenceClassifierReward, sequence_match

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_every_example_is_covered():
    tested = {
        "sb3_ppo.py",
        "custom_agent.py",
        "custom_reward.py",
        "evaluate_default_model.py",
        "torchrl_ppo.py",
        "rlhf_loop.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_custom_agent_gets_the_exact_shaped_reward():
    steps = load("custom_agent.py")["run"](seed=3)
    assert steps and "score" in steps[-1]
    for step in steps:
        shaped = -0.1 * (step["logprob"] - step["ref_logprob"])
        assert step["reward"] == pytest.approx(shaped + step.get("score", 0.0), abs=1e-5)
        assert step["kl"] == pytest.approx(step["logprob"] - step["ref_logprob"], abs=1e-6)


def test_custom_reward_is_what_the_env_pays(tmp_path):
    example = load("custom_reward.py")
    same_symbols = example["same_symbols"]
    assert same_symbols(["Copy: a b b =", "Copy: a b ="], ["b a b", "a c d"]) == [1.0, pytest.approx(1 / 3)]

    folder = example["build_tiny_classifier"](tmp_path / "classifier")
    results = example["main"](["--episodes", "6", "--seed", "2", "--classifier", str(folder)])
    classifier = SequenceClassifierReward(folder, score="probability", device="cpu")  # loaded afresh
    for name, reward in (("same_symbols", same_symbols), ("classifier", classifier)):
        assert len(results[name]) == 6
        for ep in results[name]:
            assert ep["prompt"].startswith("Copy: ")  # the reward sees the raw prompt, not a template
            assert ep["score"] == pytest.approx(reward([ep["prompt"]], [ep["completion"]])[0], abs=1e-6)
    # The task's own reward would have paid differently: the score came from the user's function.
    played = results["same_symbols"]
    default = [sequence_match([e["prompt"]], [e["completion"]], [e["prompt"][6:]])[0] for e in played]
    assert [ep["score"] for ep in played] != pytest.approx(default, abs=1e-6)


def test_custom_reward_runs_offline_with_its_tiny_classifier(capsys):
    results = load("custom_reward.py")["main"](["--episodes", "2"])
    scores = [ep["score"] for ep in results["classifier"]]
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)  # probabilities of an untrained head
    out = capsys.readouterr().out
    assert "reward_fn=same_symbols" in out and "reward_fn=classifier" in out


@pytest.mark.slow
def test_main_job_on_the_default_model(monkeypatch, capsys):
    """The README's main job, on the real default model (smaller: one task, 8 episodes)."""
    monkeypatch.setattr(
        sys, "argv", ["x", "--tasks", "textgym/Copy-v1", "--episodes", "8", "--num-envs", "4"]
    )
    load("evaluate_default_model.py")["main"]()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| `textgym/Copy-v1`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == 8 and 0.0 <= float(cells[2].split()[0]) <= 1.0
    assert float(cells[-1]) > 1.0  # the reference's perplexity of real samples


def test_torchrl_ppo_improves_the_held_out_score(capsys):
    """TorchRL PPO's learning check (one seed: the suite's time budget).

    Measured on Pattern-v0 from the task's fresh tiny model (64 held-out episodes; 0.047 before training):
    4,096 tokens give 0.25-0.38 (seeds 0-5); 6,144 tokens (24 iterations of 32 envs x 8 steps, lr 1e-3,
    4 epochs of 64-frame minibatches) give 0.42-0.50 (seeds 0-4); 8,192 gave 0.72-0.80 for four seeds and
    0.26 for seed 0 (stuck on a wrong symbol).
    """
    results = load("torchrl_ppo.py")["main"](["--total-timesteps", "4096", "--eval-episodes", "32"])
    assert results["after"] > results["before"] + 0.15, results
    assert "held-out score" in capsys.readouterr().out


def test_sb3_ppo_example_learns_pattern():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only add overhead on a busy machine
    try:
        results = load("sb3_ppo.py")["main"](["--total-timesteps", "4096", "--eval-episodes", "16"])
    finally:
        torch.set_num_threads(threads)
    assert results["after"].score > results["before"].score + 0.2, results


def test_the_rlhf_loop_trains_a_reward_model_and_optimises_it(tmp_path):
    """On Copy-v1's tiny model, at a tiny budget: the loop's files, and PPO raising the learned reward.

    Measured: proxy -0.06 -> 0.34 (z-score), gold 0.013 -> 0.046, KL 1.1, after 1,536 tokens at beta 0.5.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = load("rlhf_loop.py")["main"](
            ["--env", "textgym/Copy-v1", "--out", str(tmp_path), "--pairs", "128", "--noise", "0.05",
             "--backbone", "policy", "--rm-lr", "1e-3", "--rm-epochs", "6", "--kl-coefs", "0.5",
             "--timesteps", "1536", "--points", "1", "--lr", "1e-3", "--batch-size", "16",
             "--eval-episodes", "16"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert len(rows) == 2 and rows[0]["env_steps"] == 0 and rows[-1]["env_steps"] >= 1536
    assert rows[-1]["proxy"] > rows[0]["proxy"] + 0.15 and rows[-1]["kl"] > 0
    for name in (
        "prefs.jsonl",
        "reward-model/reward_model.json",
        "overoptimisation.csv",
        "overoptimisation.png",
        "samples.md",
    ):
        assert (tmp_path / name).is_file()
    samples = (tmp_path / "samples.md").read_text()
    assert samples.count("## beta 0.5, ") == 2 and samples.count("'Copy: ") == 8  # 4 per point
