"""JSON Lines files read record by record, with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_jsonl(
    path: str | os.PathLike[str], error: type[ValueError] = ValueError
) -> Iterator[tuple[str, Any]]:
    """``(where, value)`` for each non-blank line of ``path``, ``where`` being ``"path:line"`` for messages.

    Raises:
        FileNotFoundError: no such file.
        error: a line that is not valid JSON, naming it.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
