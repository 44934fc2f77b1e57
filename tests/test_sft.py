"""Supervised fine-tuning: demonstrations from the tasks or a file, the completion-only loss, and a model
that RL, evaluation and the command start from."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import textgym
from textgym.cli import app
from textgym.models import load_model
from textgym.sft import DemonstrationError, SFTConfig, _batch, read_demonstrations, sft
from textgym.tasks.arithmetic import ArithmeticTask
from textgym.tasks.toy import CopyTask

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add overhead


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_arithmetic_demonstrations_are_worked_answers_that_score_one(difficulty):
    task = ArithmeticTask(difficulty)
    rng = np.random.default_rng(0)
    examples = [task.sample(rng, "train") for _ in range(100)]
    demonstrations = [task.demonstration(ex) for ex in examples]
    columns = {k: [ex[k] for ex in examples] for k in ("answer", "expression", "difficulty")}
    assert task.reward([ex["prompt"] for ex in examples], demonstrations, **columns) == [1.0] * 100
    assert demonstrations[0].count("\n") == difficulty  # a line per operation, then the answer


def test_the_loss_reads_only_the_completion_and_its_eos():
    ids, mask, labels = _batch([([5, 6, 7], [8, 3]), ([9], [10, 11, 3])], pad=0)
    assert ids.tolist() == [[5, 6, 7, 8, 3], [9, 10, 11, 3, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert labels.tolist() == [[-100, -100, -100, 8, 3], [-100, 10, 11, 3, -100]]


def test_sft_teaches_copy_and_saves_a_model_the_package_loads(tmp_path):
    """Measured: held-out 0.023 -> 0.755 after 192 steps (1,024 demonstrations, 3 epochs, lr 3e-3)."""
    config = SFTConfig(learning_rate=3e-3, examples=1024, epochs=3, batch_size=16)
    bundle, losses = sft("textgym/Copy-v1", out=tmp_path / "sft", config=config, progress=False)
    assert len(losses) == 192 and np.mean(losses[-10:]) < np.mean(losses[:10]) - 1.0
    before = textgym.evaluate("reference", "textgym/Copy-v1", 64)
    after = textgym.evaluate(bundle.model, "textgym/Copy-v1", 64)
    assert before.score < 0.1 and after.score >= 0.6, (before.score, after.score)
    loaded = load_model(str(tmp_path / "sft"))
    again = textgym.evaluate(loaded.model, "textgym/Copy-v1", 64, model=loaded)
    assert again.score == pytest.approx(after.score)
    assert json.loads((tmp_path / "sft" / "sft.json").read_text())["demonstrations"] == 1024
    assert CopyTask().demonstration({"prompt": CopyTask().prompt("a b"), "target": "a b"}) == "a b"


def test_the_command_reads_demonstrations_and_reports_bad_lines(tmp_path):
    data = tmp_path / "demos.jsonl"
    lines = [{"prompt": CopyTask().prompt(s), "completion": s} for s in ["a b", "c d e"] * 8]
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = CliRunner().invoke(
        app,
        ["sft", "--env", "textgym/Copy-v1", "--data", str(data), "--out", str(tmp_path / "m"),
         "--learning-rate", "1e-3", "--eval-episodes", "8", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "over 2 steps" in result.output and "after" in result.output
    assert (tmp_path / "m" / "config.json").is_file()
    data.write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "p", "answer": "c"}\n')
    with pytest.raises(DemonstrationError, match=r"demos.jsonl:2: unknown field\(s\) \['answer'\]"):
        read_demonstrations(data)
    result = CliRunner().invoke(
        app, ["sft", "--env", "textgym/Sentiment-v0", "--out", str(tmp_path / "s")], env={"COLUMNS": "400"}
    )
    assert result.exit_code != 0 and "writes no demonstrations" in result.output
