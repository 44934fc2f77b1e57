"""An annotation session in the terminal: a person compares or ranks a policy's completions.

``textgym annotate --env ID --policy P --out prefs.jsonl`` samples ``K`` completions for each of
``prompts`` prompts (of the train split by default: the judgments are to train a reward model), then
shows them one prompt at a time (a prompt_toolkit full-screen app):

- ``K = 2``: ``1`` or ``2`` picks the better one, ``t`` calls a tie;
- ``K > 2``: digits rank them best first (a prefix is a top-k ranking), ``Enter`` records it,
  ``Backspace`` takes back the last digit;
- ``s`` skips the prompt, ``u`` undoes the last decision (answer or skip), ``q`` quits.

Completions are shown in an order drawn per prompt (so that the first is not always the same
sample). Files, beside ``--out``:

- ``prefs.jsonl``: the answers (:mod:`textgym.preferences.data` records), each appended and fsynced;
- ``prefs.jsonl.items.json``: the prompts and completions, sampled once, so a restarted session shows
  the same ones;
- ``prefs.jsonl.session.json``: which item each decision was about, replaced atomically after each.

A crash (or a kill) loses at most the decision being made: on restart the session reads the three files
back and continues at the first undecided prompt (an answer appended just before a crash, whose
decision was not yet recorded, is recognised and kept).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgym.preferences.data import Comparison, Preference, Ranking, append_preference, read_preferences


@dataclass(frozen=True)
class Item:
    """One prompt and its ``K`` completions, in the order the person sees them, with the env's scores of
    them (never shown; what a simulated annotator judges by)."""

    prompt: str
    completions: tuple[str, ...]
    scores: tuple[float, ...] = ()


def sample_items(
    policy: Any, env_id: str, prompts: int, completions: int, seed: int = 0, split: str = "train"
) -> list[Item]:
    """``prompts`` prompts of ``env_id``'s ``split`` with ``completions`` samples each from ``policy`` (a
    causal LM, an agent, or ``"reference"``), shown in an order drawn from ``seed``."""
    import gymnasium as gym
    import torch
    from gymnasium.vector import AutoresetMode

    from textgym.evaluation import sampled_policy
    from textgym.rollout import sample_episodes

    if completions < 2:
        raise ValueError(f"a judgment needs at least 2 completions per prompt, got {completions}")
    envs = gym.make_vec(
        env_id,
        num_envs=prompts * completions,
        vectorization_mode="vector_entry_point",
        split=split,
        autoreset_mode=AutoresetMode.DISABLED,
    )
    policy = sampled_policy(policy, envs)
    generator = torch.Generator(device=envs.unwrapped.device).manual_seed(seed)
    seeds = [seed + i for i in range(prompts) for _ in range(completions)]  # equal seeds, equal prompts
    episodes = sample_episodes(envs, policy, seed=seeds, generator=generator)
    envs.close()
    rng = np.random.default_rng(seed)
    items = []
    for i in range(prompts):
        texts = episodes.completions[i * completions : (i + 1) * completions]
        scores = episodes.scores[i * completions : (i + 1) * completions]
        order = rng.permutation(completions)
        items.append(
            Item(
                episodes.prompts[i * completions],
                tuple(texts[j] for j in order),
                tuple(float(scores[j]) for j in order),
            )
        )
    return items


class Session:
    """The state of an annotation: items, decisions and the files that keep them (see the module doc).

    Decisions go through :meth:`choose`, :meth:`tie`, :meth:`rank`, :meth:`skip` and :meth:`undo`; each
    is on disk when the method returns.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        items: list[Item] | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.out = Path(out)
        self.items_path = self.out.with_name(self.out.name + ".items.json")
        self.state_path = self.out.with_name(self.out.name + ".session.json")
        if self.items_path.is_file():  # a session to continue: its own items, whatever was passed
            saved = json.loads(self.items_path.read_text())
            self.items = [
                Item(d["prompt"], tuple(d["completions"]), tuple(d.get("scores", ()))) for d in saved["items"]
            ]
            self.source = saved.get("source", {})
        elif items is None:
            raise FileNotFoundError(f"no session at {str(self.out)!r}: no {self.items_path.name} beside it")
        else:
            self.items, self.source = list(items), dict(source or {})
            listed = [
                {"prompt": i.prompt, "completions": list(i.completions), "scores": list(i.scores)}
                for i in self.items
            ]
            _write_atomic(self.items_path, {"source": self.source, "items": listed})
        self.decisions: list[dict[str, Any]] = []  # {"item": i, "answer": bool}, in order
        if self.state_path.is_file():
            self.decisions = json.loads(self.state_path.read_text())["decisions"]
        answers = read_preferences(self.out) if self.out.is_file() else []
        recorded = sum(d["answer"] for d in self.decisions)
        # Appended, then killed before the decision was recorded: the answer is about the current item.
        if (
            len(answers) == recorded + 1
            and self.position < len(self.items)
            and _is_about(answers[-1], self.items[self.position])
        ):
            self.decisions.append({"item": self.position, "answer": True})
            self._save_state()
            recorded += 1
        if len(answers) != recorded:
            raise ValueError(
                f"{str(self.out)!r} holds {len(answers)} answers but its session records {recorded}; "
                f"was it edited by hand? Move it aside to start afresh"
            )

    @property
    def position(self) -> int:
        """The item shown now: the first undecided one (``len(items)`` when all are decided)."""
        return len(self.decisions)

    @property
    def done(self) -> bool:
        return self.position >= len(self.items)

    @property
    def current(self) -> Item:
        return self.items[self.position]

    # ----------------------------------------------------------------------------------- decisions
    def choose(self, index: int) -> None:
        """The shown completion ``index`` is better than the other (K = 2)."""
        item = self._pairwise()
        self._answer(Comparison(item.prompt, item.completions[index], item.completions[1 - index]))

    def tie(self) -> None:
        item = self._pairwise()
        self._answer(Comparison(item.prompt, item.completions[0], item.completions[1], tie=True))

    def rank(self, order: list[int]) -> None:
        """The shown completions ranked best first by index (a prefix: top-k)."""
        item = self.current
        if (
            not order
            or len(set(order)) != len(order)
            or not all(0 <= i < len(item.completions) for i in order)
        ):
            raise ValueError(
                f"a ranking lists distinct shown indices 0..{len(item.completions) - 1}, got {order}"
            )
        self._answer(Ranking(item.prompt, item.completions, tuple(order)))

    def skip(self) -> None:
        self._check_open()
        self.decisions.append({"item": self.position, "answer": False})
        self._save_state()

    def undo(self) -> bool:
        """Take back the last decision; False when there is none."""
        if not self.decisions:
            return False
        last = self.decisions[-1]
        if last["answer"]:
            lines = self.out.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if line.strip()][:-1]
            _replace(self.out, "".join(kept))
        self.decisions.pop()
        self._save_state()
        return True

    # ------------------------------------------------------------------------------------ plumbing
    def _pairwise(self) -> Item:
        self._check_open()
        if len(self.current.completions) != 2:
            raise ValueError("choose and tie are for two completions; rank orders more")
        return self.current

    def _check_open(self) -> None:
        if self.done:
            raise ValueError("every item is decided")

    def _answer(self, record: Preference) -> None:
        with self.out.open("a", encoding="utf-8") as f:
            append_preference(f, record)
        self.decisions.append({"item": self.position, "answer": True})
        self._save_state()

    def _save_state(self) -> None:
        _write_atomic(self.state_path, {"decisions": self.decisions})


def simulate(session: Session, temperature: float, seed: int = 0) -> None:
    """Decide every undecided item as the simulated annotator would: by the env's scores of the
    completions with Bradley-Terry noise at ``temperature`` (Plackett-Luce rankings for more than two)."""
    from textgym.preferences.simulated import SimulatedAnnotator

    annotator = SimulatedAnnotator(None, temperature, seed=seed + session.position)
    while not session.done:
        item = session.current
        if len(item.scores) != len(item.completions):
            raise ValueError(
                f"item {session.position} carries no scores to judge by; it was not sampled from an env"
            )
        if len(item.completions) == 2:
            (judged,) = annotator.compare(
                [item.prompt],
                [item.completions[0]],
                [item.completions[1]],
                [item.scores[0]],
                [item.scores[1]],
            )
            if judged.tie:
                session.tie()
            else:
                session.choose(item.completions.index(judged.chosen))
        else:
            session.rank(list(annotator.rank(item.prompt, list(item.completions), gold=item.scores).ranking))


def _is_about(record: Preference, item: Item) -> bool:
    if isinstance(record, Ranking):
        return record.prompt == item.prompt and record.completions == item.completions
    return record.prompt == item.prompt and {record.chosen, record.rejected} <= set(item.completions)


def _write_atomic(path: Path, data: Any) -> None:
    _replace(path, json.dumps(data, ensure_ascii=False))


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ the app
def run_app(session: Session) -> None:
    """Show ``session``'s items one by one in a full-screen terminal app until all are decided or ``q``."""
    from xml.sax.saxutils import escape

    from prompt_toolkit.application import Application
    from prompt_toolkit.formatted_text import HTML
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import HSplit, Layout, Window
    from prompt_toolkit.layout.controls import FormattedTextControl

    typed: list[int] = []
    message = [""]

    def screen():
        if session.done:
            return HTML("<b>Every prompt is decided.</b> Press q to quit.")
        item = session.current
        k = len(item.completions)
        keys = "1/2 better, t tie" if k == 2 else "digits rank best first, Enter records, Backspace edits"
        lines = [
            f"<b>Prompt {session.position + 1} of {len(session.items)}</b>  "
            f"({sum(d['answer'] for d in session.decisions)} answered)",
            "",
            escape(item.prompt),
            "",
        ]
        for i, text in enumerate(item.completions):
            lines += [f"<b>[{i + 1}]</b> {escape(text)}", ""]
        if k > 2:
            lines.append(f"Ranking so far: {' > '.join(str(i + 1) for i in typed) or '-'}")
        lines += [f"<i>{keys}; s skip, u undo, q quit</i>", escape(message[0])]
        return HTML("\n".join(lines))

    bindings = KeyBindings()

    def decide(action) -> None:
        try:
            action()
            message[0] = ""
        except ValueError as exc:
            message[0] = str(exc)
        typed.clear()

    for digit in range(1, 10):

        @bindings.add(str(digit))
        def _(event, index=digit - 1) -> None:
            if session.done or index >= len(session.current.completions):
                return
            if len(session.current.completions) == 2:
                decide(lambda: session.choose(index))
            elif index not in typed:
                typed.append(index)

    @bindings.add("enter")
    def _(event) -> None:
        if not session.done and len(session.current.completions) > 2 and typed:
            order = list(typed)
            decide(lambda: session.rank(order))

    @bindings.add("backspace")
    def _(event) -> None:
        if typed:
            typed.pop()

    @bindings.add("t")
    def _(event) -> None:
        if not session.done and len(session.current.completions) == 2:
            decide(session.tie)

    @bindings.add("s")
    def _(event) -> None:
        if not session.done:
            decide(session.skip)

    @bindings.add("u")
    def _(event) -> None:
        typed.clear()
        message[0] = "" if session.undo() else "nothing to undo"

    @bindings.add("q")
    @bindings.add("c-c")
    def _(event) -> None:
        event.app.exit()

    layout = Layout(HSplit([Window(FormattedTextControl(screen), wrap_lines=True)]))
    Application(layout=layout, key_bindings=bindings, full_screen=True).run()
