"""Preference data: comparisons and rankings of completions, one JSON object per line.

Two kinds of line, told apart by their keys:

- **comparison** ``{"prompt": str, "chosen": str, "rejected": str, "tie": bool?, "margin": number?}``: the
  annotator preferred ``chosen`` to ``rejected``. With ``"tie": true`` they judged the two equal (which
  one is under which key does not matter). ``margin`` (>= 0, default 0) says by how much ``chosen`` is
  better, for the Bradley-Terry loss with a margin (Llama 2's).
- **ranking** ``{"prompt": str, "completions": [str, ...], "ranking": [int, ...]}``: ``ranking`` lists
  indices into ``completions``, best first. It may stop early (a partial, top-k ranking: the listed ones
  are better than every unlisted one, which are not ordered among themselves). At least 2 completions;
  indices distinct and in range.

Any other key is an error, so that a misspelt ``"rejcted"`` is not silently dropped; so is a line that is
not a JSON object or a field of the wrong type. :func:`read_preferences` names the file, line and field.
:func:`append_preference` writes one line and fsyncs it, so a crash loses at most the line being written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from textgym.jsonl import read_jsonl

COMPARISON_KEYS = {"prompt", "chosen", "rejected", "tie", "margin"}
RANKING_KEYS = {"prompt", "completions", "ranking"}


class PreferenceDataError(ValueError):
    """A preference file line that does not follow its schema; the message names the line and field."""


@dataclass(frozen=True)
class Comparison:
    """``chosen`` preferred to ``rejected`` as completions of ``prompt`` (or, with ``tie``, neither)."""

    prompt: str
    chosen: str
    rejected: str
    tie: bool = False
    margin: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.tie:
            del data["tie"]
        if not self.margin:
            del data["margin"]
        return data


@dataclass(frozen=True)
class Ranking:
    """``completions`` of ``prompt`` ranked: ``ranking`` holds their indices, best first (maybe a prefix)."""

    prompt: str
    completions: tuple[str, ...]
    ranking: tuple[int, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completions": list(self.completions), "ranking": list(self.ranking)}


Preference = Comparison | Ranking


def parse_preference(data: Any, where: str = "record") -> Preference:
    """A :class:`Comparison` or :class:`Ranking` from one decoded JSON object, or a PreferenceDataError."""
    if not isinstance(data, dict):
        raise PreferenceDataError(f"{where}: expected a JSON object, got {type(data).__name__}")
    keys = set(data)
    kind_keys = COMPARISON_KEYS if "chosen" in keys or "rejected" in keys else RANKING_KEYS
    if "completions" in keys and kind_keys is COMPARISON_KEYS:
        raise PreferenceDataError(
            f"{where}: has both a comparison's 'chosen'/'rejected' and a ranking's 'completions'; "
            f"a line is one kind"
        )
    unknown = sorted(keys - kind_keys)
    if unknown:
        kind = "comparison" if kind_keys is COMPARISON_KEYS else "ranking"
        raise PreferenceDataError(f"{where}: unknown field(s) {unknown}; a {kind} has {sorted(kind_keys)}")
    required = ["prompt", "chosen", "rejected"] if kind_keys is COMPARISON_KEYS else ["prompt", "completions"]
    for key in required:
        if key not in data:
            raise PreferenceDataError(f"{where}: missing field {key!r}")
        if key != "completions" and not isinstance(data[key], str):
            raise PreferenceDataError(
                f"{where}: field {key!r} must be a string, got {type(data[key]).__name__}"
            )
    if kind_keys is COMPARISON_KEYS:
        tie = data.get("tie", False)
        if not isinstance(tie, bool):
            raise PreferenceDataError(f"{where}: field 'tie' must be true or false, got {tie!r}")
        margin = data.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
            raise PreferenceDataError(f"{where}: field 'margin' must be a number >= 0, got {margin!r}")
        return Comparison(data["prompt"], data["chosen"], data["rejected"], tie, float(margin))
    completions = data["completions"]
    if (
        not isinstance(completions, list)
        or len(completions) < 2
        or not all(isinstance(c, str) for c in completions)
    ):
        raise PreferenceDataError(
            f"{where}: field 'completions' must be a list of >= 2 strings, got {completions!r}"
        )
    ranking = data.get("ranking")
    if ranking is None:
        raise PreferenceDataError(f"{where}: missing field 'ranking'")
    if (
        not isinstance(ranking, list)
        or not ranking
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(completions) for i in ranking
        )
        or len(set(ranking)) != len(ranking)
    ):
        raise PreferenceDataError(
            f"{where}: field 'ranking' must list distinct indices into 'completions' (0 to "
            f"{len(completions) - 1}), best first; got {ranking!r}"
        )
    return Ranking(data["prompt"], tuple(completions), tuple(ranking))


def read_preferences(path: str | os.PathLike[str]) -> list[Preference]:
    """Every record of a JSONL preference file, in order; blank lines are allowed, nothing is skipped.

    Raises:
        FileNotFoundError: no such file.
        PreferenceDataError: the first bad line, named as ``path:line``, with its field.
    """
    return [parse_preference(data, where) for where, data in read_jsonl(path, PreferenceDataError)]


def append_preference(file: TextIO, record: Preference) -> None:
    """Write ``record`` as one line of ``file`` (opened for appending) and fsync it to disk."""
    file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    file.flush()
    os.fsync(file.fileno())


def write_preferences(path: str | os.PathLike[str], records: list[Preference]) -> Path:
    """Write ``records`` as a JSONL file (replacing it), each line fsynced."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            append_preference(f, record)
    return path
