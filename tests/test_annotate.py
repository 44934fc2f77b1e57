"""The annotation session: its decisions and files, then the terminal app driven through a pseudo-terminal,
killed mid-session and resumed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pexpect
import pytest

from textgym.preferences import Comparison, Ranking, read_preferences
from textgym.preferences.annotate import Item, Session, sample_items
from textgym.preferences.data import append_preference

ITEMS = [Item("p0", ("a", "b")), Item("p1", ("c", "d")), Item("p2", ("e", "f")), Item("p3", ("g", "h"))]


def test_decisions_are_on_disk_and_a_new_session_continues_them(tmp_path):
    out = tmp_path / "prefs.jsonl"
    session = Session(out, ITEMS, {"env": "test"})
    session.choose(1)
    session.tie()
    session.skip()
    assert read_preferences(out) == [Comparison("p0", "b", "a"), Comparison("p1", "c", "d", tie=True)]
    again = Session(out)  # a restart: the same items and decisions, from the files alone
    assert again.items == ITEMS and again.position == 3 and again.source == {"env": "test"}
    assert again.undo() and again.position == 2  # the skip
    assert again.undo() and read_preferences(out) == [Comparison("p0", "b", "a")]  # the tie, taken back
    again.choose(0)
    again.choose(0)
    again.choose(1)
    assert again.done and len(read_preferences(out)) == 4
    with pytest.raises(ValueError, match="every item is decided"):
        again.skip()


def test_an_answer_appended_just_before_a_crash_is_kept(tmp_path):
    out = tmp_path / "prefs.jsonl"
    session = Session(out, ITEMS)
    session.choose(0)
    with out.open("a") as f:  # killed between appending the answer and recording the decision
        append_preference(f, Comparison("p1", "d", "c"))
    restarted = Session(out)
    assert restarted.position == 2 and len(read_preferences(out)) == 2
    (out.with_name("prefs.jsonl.session.json")).write_text(json.dumps({"decisions": []}))
    with pytest.raises(ValueError, match="holds 2 answers but its session records 0"):
        Session(out)


def test_rankings_of_more_than_two(tmp_path):
    session = Session(tmp_path / "prefs.jsonl", [Item("p", ("x", "y", "z"))])
    with pytest.raises(ValueError, match=r"choose and tie are for two completions"):
        session.choose(0)
    with pytest.raises(ValueError, match=r"distinct shown indices 0\.\.2, got \[1, 1\]"):
        session.rank([1, 1])
    session.rank([2])  # top-1
    assert read_preferences(tmp_path / "prefs.jsonl") == [Ranking("p", ("x", "y", "z"), (2,))]


def test_sampled_items_share_their_prompt_and_are_reproducible():
    items = sample_items("reference", "textgym/Copy-v1", prompts=3, completions=2, seed=5)
    assert items == sample_items("reference", "textgym/Copy-v1", prompts=3, completions=2, seed=5)
    assert len({item.prompt for item in items}) == 3 and all(len(item.completions) == 2 for item in items)


# ------------------------------------------------------------------------------ through a terminal
def spawn(out: Path) -> pexpect.spawn:
    command = [
        "-m", "textgym", "annotate", "--env", "textgym/Copy-v1", "--prompts", "4", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    return pexpect.spawn(
        sys.executable, command, env=env, dimensions=(40, 120), timeout=120, encoding="utf-8"
    )


def decided(out: Path) -> int:
    state = out.with_name(out.name + ".session.json")
    return len(json.loads(state.read_text())["decisions"]) if state.is_file() else 0


def press(child: pexpect.spawn, out: Path, key: str, expect: int) -> None:
    """Send ``key`` and wait until the session has recorded ``expect`` decisions."""
    child.send(key)
    deadline = time.monotonic() + 30
    while decided(out) != expect:
        assert time.monotonic() < deadline, f"no decision {expect} after {key!r}: {child.before!r}"
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.1)


def test_the_terminal_session_survives_a_kill_and_resumes(tmp_path):
    out = tmp_path / "prefs.jsonl"
    child = spawn(out)
    child.expect("Prompt 1 of 4")
    press(child, out, "1", 1)
    press(child, out, "t", 2)
    press(child, out, "s", 3)
    child.kill(9)  # no clean exit
    child.wait()
    answers = read_preferences(out)
    assert len(answers) == 2 and not answers[0].tie and answers[1].tie

    child = spawn(out)
    child.expect("Continuing the session")
    child.expect("Prompt 4 of 4")
    press(child, out, "u", 2)  # undo the skip: back to prompt 3
    press(child, out, "2", 3)
    press(child, out, "1", 4)
    child.send("q")
    child.expect("4 answers in")
    child.expect(pexpect.EOF)
    items = json.loads(out.with_name("prefs.jsonl.items.json").read_text())["items"]
    answers = read_preferences(out)
    assert [a.prompt for a in answers] == [item["prompt"] for item in items]
    assert answers[2].chosen == items[2]["completions"][1] and answers[3].chosen == items[3]["completions"][0]


def test_the_simulated_annotator_fills_a_session_from_the_env_scores(tmp_path):
    from typer.testing import CliRunner

    from textgym.cli import app

    out = tmp_path / "prefs.jsonl"
    result = CliRunner().invoke(
        app, ["annotate", "--env", "textgym/Copy-v1", "--prompts", "16", "--simulate", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    items = Session(out).items
    answers = read_preferences(out)
    assert len(answers) == 16 and Session(out).done
    for item, answer in zip(items, answers, strict=True):
        score = dict(zip(item.completions, item.scores, strict=True))
        if answer.tie:  # noiseless: equal scores tie, else the better one is chosen
            assert score[answer.chosen] == score[answer.rejected]
        else:
            assert score[answer.chosen] > score[answer.rejected]


def test_simulated_rankings_follow_the_scores(tmp_path):
    from textgym.preferences.annotate import simulate

    session = Session(tmp_path / "prefs.jsonl", [Item("p", ("x", "y", "z"), (0.2, 0.9, 0.5))])
    simulate(session, temperature=0)
    assert read_preferences(tmp_path / "prefs.jsonl") == [Ranking("p", ("x", "y", "z"), (1, 2, 0))]
