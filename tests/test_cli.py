"""The ``textgym`` command end to end on the toy tasks: list, train (and resume), eval, export, compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import textgym.run
from textgym.cli import app
from textgym.compare import Comparison, compare, interval, plan_jobs
from textgym.evaluation import Evaluation
from textgym.run import RunConfig, read_curve, train

runner = CliRunner()
TESTS = str(Path(__file__).resolve().parent)


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add overhead


def test_list_shows_every_env_and_agent():
    out = invoke("list").output
    for name in ("textgym/Pattern-v0", "textgym/Sentiment-v0", "reinforce", "sb3-ppo", "torchrl-ppo"):
        assert name in out
    assert "pkg.module:Class" in out


def test_train_help_shows_every_agent_setting_with_its_help():
    out = invoke("train", "--help").output
    assert "gae_lambda = 1.0: GAE lambda" in out  # textgym's PPO
    assert "n_steps = 2048: The number of steps" in out  # SB3's PPO, help from SB3's docstring
    assert "--timesteps" in out and "[default: 8]" in out


def test_train_writes_a_run_that_eval_and_export_read(tmp_path):
    run = tmp_path / "run"
    result = invoke(
        "train", "--env", "textgym/Pattern-v0", "--agent", "ppo", "--timesteps", 3072, "--checkpoints", 2,
        "--eval-episodes", 16, "--set", "learning_rate=1e-3", "--set", "batch_size=16", "--out", run,
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["settings"] == {"learning_rate": 1e-3, "batch_size": 16}
    assert config["resolved"]["gae_lambda"] == 1.0 and config["versions"]["torch"] == torch.__version__
    curve = read_curve(run)
    assert [row["env_steps"] > 0 for row in curve] == [False, True, True]
    assert curve[-1]["score"] > curve[0]["score"] + 0.1  # it learned (0.09 to 0.44; lambda 0.95: 0.26)
    final = Evaluation.from_json(run / "evaluation.json")
    assert final.score == pytest.approx(curve[-1]["score"]) and len(final.completions) == 16
    with (run / "logs" / "progress.csv").open() as f:
        iterations = [float(r["iteration"]) for r in csv.DictReader(f)]
    assert iterations == list(range(1, len(iterations) + 1))  # each chunk's learn() appends, none lost
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "logs").iterdir())
    assert "Completion" in (run / "samples.md").read_text()
    assert f"{final.score:.3f}" in result.output

    # eval reads the run folder: the same prompts and sampling seed give the same figures
    result = invoke("eval", "--policy", run, "--episodes", 16, "--out", tmp_path / "eval.json")
    again = Evaluation.from_json(tmp_path / "eval.json")
    assert again.score == pytest.approx(final.score) and again.kl == pytest.approx(final.kl, rel=1e-4)

    # export: plain transformers loads the folder and computes the agent's logits
    from transformers import AutoModelForCausalLM, pipeline

    invoke("export", run, "--out", tmp_path / "hf")
    agent = textgym.run.load_agent(run)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([[1, 5, 7, 9, 4]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, agent.lm(ids).logits, rtol=0, atol=1e-5)
    assert isinstance(pipeline("text-generation", model=str(tmp_path / "hf"))("a b", max_new_tokens=3), list)
    result = invoke("eval", "--policy", tmp_path / "hf", "--env", "textgym/Pattern-v0", "--episodes", 16)
    assert f"{final.score:.3f}" in result.output  # the exported model is the trained policy

    # elo: the trained run against the zero-shot reference, on the same 16 prompts, by the gold reward
    result = invoke(
        "elo", "--policy", "reference", "--policy", run, "--env", "textgym/Pattern-v0", "--episodes", 16,
        "--samples", 50, "--out", tmp_path / "elo.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    standings = json.loads((tmp_path / "elo.json").read_text())
    reference, trained = standings["players"]
    assert standings["games"] == 16 and trained["gold_score"] == pytest.approx(final.score)
    assert trained["win_rate"] + reference["win_rate"] == pytest.approx(1.0)
    assert trained["bradley_terry"] > reference["bradley_terry"] and trained["elo"] > reference["elo"]


def test_a_run_from_another_model_holds_its_kl_to_that_model(tmp_path):
    """``--model FOLDER`` (an SFT policy, say) is the run's KL reference in training, its curve and eval."""
    from conftest import sharpen

    from textgym.models import tiny_model
    from textgym.tasks import PatternTask

    start = tmp_path / "start"
    bundle = sharpen(tiny_model(PatternTask().corpus(), seed=13))  # far from Pattern-v0's own model
    bundle.model.save_pretrained(start)
    bundle.tokenizer.save_pretrained(start)
    run = tmp_path / "run"
    result = invoke(
        "train", "--env", "textgym/Pattern-v0", "--agent", "reinforce", "--model", start, "--timesteps", 512,
        "--checkpoints", 1, "--eval-episodes", 16, "--set", "learning_rate=1e-2", "--out", run,
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first, last = read_curve(run)
    assert abs(first["kl"]) < 1e-4 and last["kl"] > 0.01  # zero before training: the start is the reference
    result = invoke("eval", "--policy", run, "--episodes", 16, "--out", tmp_path / "eval.json")
    assert Evaluation.from_json(tmp_path / "eval.json").kl == pytest.approx(last["kl"], rel=1e-4)
    zero_shot = textgym.evaluate(bundle.model, "textgym/Pattern-v0", 16)  # against Pattern-v0's own model
    assert zero_shot.kl > 1.0


def test_a_runs_config_repeats_it_and_a_settings_file_is_read(tmp_path):
    first = tmp_path / "first"
    common = ["--timesteps", 32, "--checkpoints", 1, "--eval-episodes", 8, "--no-progress"]
    invoke("train", "--env", "textgym/Copy-v1", "--agent", "reinforce", "--seed", 4, "--set", "batch_size=4",
           "--env-arg", "kl_coef=0.1", "--out", first, *common)  # fmt: skip
    invoke("train", "--config", first / "config.yaml", "--out", tmp_path / "again", *common)
    (tmp_path / "settings.yaml").write_text("batch_size: 4\nlearning_rate: 0.002\n")
    invoke("train", "--env", "textgym/Copy-v1", "--config", tmp_path / "settings.yaml", "--set",
           "learning_rate=1e-3", "--out", tmp_path / "file", *common)  # fmt: skip
    a, b = (yaml.safe_load((tmp_path / n / "config.yaml").read_text()) for n in ("first", "again"))
    for key in ("env", "agent", "seed", "env_kwargs", "settings"):
        assert a[key] == b[key]
    assert a["seed"] == 4 and a["env_kwargs"] == {"kl_coef": 0.1}
    figures = [[{k: v for k, v in row.items() if k != "wall_time"} for row in read_curve(tmp_path / n)]
               for n in ("first", "again")]  # fmt: skip
    assert figures[0] == figures[1]  # the same run again, on CPU
    c = yaml.safe_load((tmp_path / "file" / "config.yaml").read_text())
    assert c["settings"] == {"batch_size": 4, "learning_rate": 1e-3}  # --set beats the file


def test_export_merges_a_lora_adapter(tmp_path):
    from transformers import AutoModelForCausalLM

    from textgym.agents import REINFORCE
    from textgym.export import export
    from textgym.models import tiny_model
    from textgym.tasks import CopyTask

    # A model of its own (tiny models are memoised by seed; test_agents' LoRA test takes seed 11): the
    # adapter goes into it.
    bundle = tiny_model(CopyTask().corpus(), seed=12)
    env_kwargs = {"model": bundle, "kl_coef": 0.1}
    agent = REINFORCE("textgym/Copy-v1", env_kwargs=env_kwargs, batch_size=4, learning_rate=1e-2, lora_r=4)
    agent.learn(total_timesteps=64, progress_bar=False)
    export(agent, tmp_path / "hf")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([[1, 5, 7, 9, 4]])
    with torch.no_grad():
        ours, theirs = agent.lm(ids).logits, plain(ids).logits
        base = agent.policy.base_model(ids).logits  # the shared reference: the adapter is off there
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    assert not torch.allclose(base, ours, atol=1e-4)  # the adapter moved the policy


@pytest.mark.parametrize("agent", ["ppo", "user_agents:PositionAgent"])
def test_a_stopped_run_resumes_to_the_identical_curve(agent, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(TESTS)
    settings = {"batch_size": 4, "learning_rate": 1e-3} if agent == "ppo" else {"batch": 4}
    config = RunConfig(
        "textgym/Copy-v1", agent, timesteps=96, checkpoints=3, eval_episodes=8, settings=settings
    )
    train(config, tmp_path / "full", progress=False)

    cls = textgym.run.agent_class(agent)
    calls = {"n": 0}
    learn = cls.learn

    def stop_in_the_second_chunk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return learn(self, *args, **kwargs)

    monkeypatch.setattr(cls, "learn", stop_in_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "stopped", progress=False)
    assert len(read_curve(tmp_path / "stopped")) == 2  # step 0 and the first chunk
    monkeypatch.setattr(cls, "learn", learn)
    with pytest.raises(textgym.run.RunError, match="--resume"):
        train(config, tmp_path / "stopped", progress=False)
    train(config, tmp_path / "stopped", resume=True, progress=False)

    def figures(folder):  # (points, figures); NaN (a predict-only agent's KL) equals NaN here
        return np.array([[v for k, v in row.items() if k != "wall_time"] for row in read_curve(folder)])

    np.testing.assert_array_equal(figures(tmp_path / "stopped"), figures(tmp_path / "full"))
    assert len(figures(tmp_path / "full")) == 4

    def steps_column(folder):  # as written: the resume rewrites the points it read back
        return [line.split(",")[0] for line in (folder / "curve.csv").read_text().splitlines()]

    assert steps_column(tmp_path / "stopped") == steps_column(tmp_path / "full")


@pytest.mark.parametrize(
    "agent, settings",
    [
        ("sb3-ppo", {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 1, "learning_rate": 1e-3}),
        ("torchrl-ppo", {"num_envs": 4, "n_steps": 16, "minibatch_size": 32, "n_epochs": 1}),
    ],
)
def test_adapters_run_stop_and_resume_through_the_command(agent, settings, tmp_path, monkeypatch):
    # Not bit for bit (their envs restart the episodes in flight), but from the checkpoint, to the end.
    config = RunConfig(
        "textgym/Pattern-v0", agent, timesteps=128, checkpoints=2, eval_episodes=8, settings=settings
    )
    cls = textgym.run.agent_class(agent)
    learn = cls.learn

    def stop_in_the_second_chunk(self, total_timesteps, **kwargs):
        if total_timesteps > 64:
            raise KeyboardInterrupt
        return learn(self, total_timesteps=total_timesteps, **kwargs)

    monkeypatch.setattr(cls, "learn", stop_in_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False)
    monkeypatch.setattr(cls, "learn", learn)
    train(config, tmp_path, resume=True, progress=False)
    steps = [row["env_steps"] for row in read_curve(tmp_path)]
    assert steps[0] == 0 and 64 <= steps[1] < 128 <= steps[2]
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert "progress.csv" in logs and any(n.startswith("events.out.tfevents") for n in logs)
    if agent == "sb3-ppo":  # SB3's CSV writer truncates: a loaded agent goes on in a file of its own
        assert f"progress-from-{int(steps[1])}.csv" in logs


@pytest.mark.parametrize("agent", ["ppo", "sb3-ppo", "torchrl-ppo"])
def test_an_untrained_agent_samples_what_the_reference_samples(agent):
    # What lets a comparison reuse the reference's evaluation as every run's step-0 point.
    from textgym import evaluate, make_agent

    trained = evaluate(make_agent(agent, "textgym/Copy-v1", seed=3), "textgym/Copy-v1", 16)
    reference = evaluate("reference", "textgym/Copy-v1", 16)
    assert trained.completions == reference.completions and trained.score == reference.score
    assert trained.perplexity == pytest.approx(reference.perplexity) and abs(trained.kl) < 1e-5


def test_settings_parse_as_literals_and_keep_agent_names():
    from textgym.cli import parse_setting
    from textgym.compare import split_settings

    assert parse_setting("learning-rate=1e-5") == ("learning_rate", 1e-5)
    assert parse_setting("sb3-ppo.n-steps=12") == ("sb3-ppo.n_steps", 12)
    assert parse_setting("device=cpu") == ("device", "cpu")
    settings = split_settings(
        ["ppo", "sb3-ppo"], {"learning_rate": 1e-4, "sb3-ppo.n_steps": 12, "gae_lambda": 1.0}
    )
    assert settings == {
        "ppo": {"learning_rate": 1e-4, "gae_lambda": 1.0},
        "sb3-ppo": {"learning_rate": 1e-4, "n_steps": 12, "gae_lambda": 1.0},
    }


def test_bad_input_names_the_value_and_the_close_matches(tmp_path):
    def error(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code != 0
        return " ".join(result.output.split())

    assert "textgym/Pattern-v0" in error("train", "--env", "textgym/Patern-v0", "--out", tmp_path / "a")
    assert "'ppo'" in error("train", "--env", "textgym/Copy-v1", "--agent", "ppoo", "--out", tmp_path / "a")
    message = error("train", "--env", "textgym/Copy-v1", "--set", "lamda=1", "--out", tmp_path / "a")
    assert "'lamda'" in message and "'gae_lambda'" in message
    assert "--set takes KEY=VALUE" in error(
        "train", "--env", "textgym/Copy-v1", "--set", "x", "--out", tmp_path
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    assert "--overwrite" in error("train", "--env", "textgym/Copy-v1", "--out", tmp_path / "b")
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"  # nothing was written over
    assert "no-such-model" in error("eval", "--policy", "no-such-model", "--env", "textgym/Copy-v1")
    assert "seed" in error("compare", "--env", "textgym/Copy-v1", "--agents", "ppo", "--set", "sed=1",
                           "--out", tmp_path / "c")  # fmt: skip


def test_compare_writes_the_tables_and_redoes_nothing_that_finished(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(TESTS)
    run = RunConfig("textgym/Pattern-v0", "ppo", timesteps=96, checkpoints=2, eval_episodes=8)
    comparison = Comparison(
        run, {"reinforce": {"batch_size": 4, "learning_rate": 1e-3}, "user_agents:PositionAgent": {}}, seeds=2
    )
    trained: list[str] = []
    real_train = textgym.compare.train_run

    def interrupted_after_the_first_run(config, folder, **kwargs):
        if trained:
            raise KeyboardInterrupt
        trained.append(Path(folder).name)
        return real_train(config, folder, **kwargs)

    monkeypatch.setattr(textgym.compare, "train_run", interrupted_after_the_first_run)
    with pytest.raises(KeyboardInterrupt):
        compare(comparison, tmp_path, jobs=0, progress=False)
    first = tmp_path / "runs" / "reinforce-seed0" / "evaluation.json"
    stamp = first.stat().st_mtime_ns

    def recording(config, folder, **kwargs):
        trained.append(Path(folder).name)
        return real_train(config, folder, **kwargs)

    monkeypatch.setattr(textgym.compare, "train_run", recording)
    text = compare(comparison, tmp_path, jobs=0, progress=False)
    assert trained == ["reinforce-seed0", "reinforce-seed1", "user_agents_PositionAgent-seed0",
                       "user_agents_PositionAgent-seed1"]  # fmt: skip
    assert first.stat().st_mtime_ns == stamp  # the finished run was not redone

    with (tmp_path / "results.csv").open() as f:
        rows = {r["policy"]: r for r in csv.DictReader(f)}
    for agent, folder in (
        ("reinforce", "reinforce"),
        ("user_agents:PositionAgent", "user_agents_PositionAgent"),
    ):
        finals = [
            Evaluation.from_json(tmp_path / "runs" / f"{folder}-seed{s}" / "evaluation.json") for s in (0, 1)
        ]
        mean, low, high = interval([e.score for e in finals])
        assert float(rows[agent]["score"]) == pytest.approx(np.mean([e.score for e in finals]))
        assert float(rows[agent]["score_low"]) == pytest.approx(low) and float(
            rows[agent]["score_high"]
        ) == pytest.approx(high)
        assert f"| {agent} | 2 | {mean:.3f} [{low:.3f}, {high:.3f}]" in text
    reference = Evaluation.from_json(tmp_path / "reference" / "evaluation.json")
    assert float(rows["zero-shot reference"]["score"]) == pytest.approx(reference.score)
    assert (tmp_path / "results.md").read_text() == text
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = (tmp_path / "samples.md").read_text()
    assert reference.prompts[0] in samples and "reinforce" in samples
    with pytest.raises(textgym.run.RunError, match="other settings"):
        compare(Comparison(run, {"ppo": {}}, 1), tmp_path)
    with pytest.raises(textgym.run.RunError, match="other settings"):  # fewer seeds: a subset
        compare(Comparison(run, comparison.agents, 1), tmp_path)

    trained.clear()  # a third seed extends the comparison: only it trains
    text = compare(Comparison(run, comparison.agents, 3), tmp_path, jobs=0, progress=False)
    assert trained == ["reinforce-seed2", "user_agents_PositionAgent-seed2"]
    assert first.stat().st_mtime_ns == stamp and "| reinforce | 3 |" in text


def test_compare_runs_pinned_processes_in_parallel(tmp_path):
    result = runner.invoke(
        app,
        ["compare", "--env", "textgym/Pattern-v0", "--agents", "user_agents:PositionAgent", "--seeds", "2",
         "--timesteps", "64", "--checkpoints", "1", "--episodes", "8", "--jobs", "2", "--out", str(tmp_path),
         "--no-progress"],
        env={"PYTHONPATH": TESTS},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for seed in (0, 1):
        log = (tmp_path / "runs" / f"user_agents_PositionAgent-seed{seed}" / "train.log").read_text()
        assert (tmp_path / "runs" / f"user_agents_PositionAgent-seed{seed}" / "evaluation.json").is_file(), (
            log
        )
    state = json.loads((tmp_path / "runs" / "user_agents_PositionAgent-seed0" / "state.json").read_text())
    assert state["points"] == 2


def test_demo_is_the_compare_it_prints(tmp_path, monkeypatch):
    import textgym.cli

    calls = []
    monkeypatch.setattr(textgym.cli, "compare", lambda **kwargs: calls.append(kwargs))
    result = invoke("demo", "--out", tmp_path)
    printed = " ".join(result.output.split())
    assert printed.startswith("textgym compare --env textgym/Sentiment-v0 --agents reinforce,ppo,sb3-ppo")
    assert calls == [{**textgym.cli.DEMO_CPU, "out": tmp_path, "jobs": None, "progress": True,
                      "overwrite": False, "model": None}]  # fmt: skip
    # What it prints is a command line that compare takes, option for option.
    args = printed.split(" ", 2)[2].split()
    assert runner.invoke(app, ["compare", "--help"]).exit_code == 0
    options = {a for a in args if a.startswith("--")}
    assert options <= set(" ".join(runner.invoke(app, ["compare", "--help"]).output.split()).split())


def test_jobs_split_the_cores_and_more_jobs_than_cores_share_them_all(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert [p["TEXTGYM_CORES"] for p in plan_jobs(None, 9)] == ["0", "1", "2", "3"]
    plans = [(p["TEXTGYM_CORES"], p["OMP_NUM_THREADS"]) for p in plan_jobs(2, 9)]
    assert plans == [("0,1", "2"), ("2,3", "2")]
    assert len(plan_jobs(None, 3)) == 3  # no more jobs than runs
    # Six runs at once on four cores: none is pinned to a core another job's end would leave idle.
    assert [(p["TEXTGYM_CORES"], p["OMP_NUM_THREADS"]) for p in plan_jobs(6, 9)] == [("0,1,2,3", "1")] * 6
