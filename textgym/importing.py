"""Resolve ``"pkg.module:name"`` import strings, the form Gymnasium entry points use."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(spec: str) -> Any:
    """Import the object named by ``"pkg.module:attr"`` (``attr`` may be dotted, ``"mod:Class.method"``).

    Raises:
        ValueError: if ``spec`` is not of the form ``"module:attr"``.
        ImportError: if the module or the attribute cannot be found; the message names both.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"expected an import string of the form 'pkg.module:name', got {spec!r}")
    module_name, attr_path = spec.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import module {module_name!r} named in {spec!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(
                f"module {module_name!r} has no attribute {attr_path!r} (from {spec!r})"
            ) from None
    return obj
