"""The reward-function contract: what a reward is, how one is named, resolved and safely called.

A reward follows TRL's convention: a callable ``fn(prompts, completions, **kwargs) -> list[float]`` called
once per batch of finished episodes. ``kwargs`` carries per-example dataset columns as lists aligned with
``prompts`` (e.g. ``target=[...]``) and possibly extra keys a reward should ignore, so every reward must
accept ``**kwargs``.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from textgym.importing import import_object

__all__ = ["RewardError", "RewardFn", "resolve_reward", "reward_name", "score_completions"]

# How much of a prompt or completion an error message quotes.
_QUOTE_CHARS = 80


class RewardFn(Protocol):
    """A reward function in TRL's convention.

    It is called with keyword arguments, as TRL calls it, so ``def fn(completions, **kwargs)`` qualifies too.
    """

    def __call__(self, prompts: list[str], completions: list[str], **kwargs: Any) -> Sequence[float]:
        """Score each ``(prompt, completion)`` pair; returns one finite float per pair."""
        ...


class RewardError(ValueError):
    """A reward raised, or returned something other than one finite number per completion."""


def reward_name(fn: object) -> str:
    """A readable name for ``fn``, for error and log messages.

    Args:
        fn: A reward: a function or method (named ``module.qualname``), a ``functools.partial`` (named after
            the function it wraps), or a callable instance (named after its class, unless it carries a
            string ``name`` attribute, as :class:`~textgym.rewards.WeightedSum` does with its composition).

    Returns:
        The name; never raises.
    """
    if isinstance(fn, functools.partial):
        return reward_name(fn.func)
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(qualname, str):
        # Functions, methods, builtins and classes all carry __qualname__; instances do not.
        module = getattr(fn, "__module__", None)
        return qualname if module in (None, "builtins") else f"{module}.{qualname}"
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(fn).__qualname__


def resolve_reward(spec: RewardFn | str) -> RewardFn:
    """Turn a reward spec into a callable reward.

    Args:
        spec: A live callable (returned as is); a class (instantiated with no arguments); or an import string
            ``"pkg.module:name"`` naming either of those.

    Returns:
        The reward callable.

    Raises:
        ValueError: if ``spec`` is a malformed import string.
        ImportError: if the module or attribute named by ``spec`` cannot be imported.
        TypeError: if ``spec`` (or what it names) is not callable, or names a class that needs constructor
            arguments.
    """
    obj: Any = import_object(spec) if isinstance(spec, str) else spec
    where = f" (imported from {spec!r})" if isinstance(spec, str) else ""
    if inspect.isclass(obj):
        obj = _instantiate_without_arguments(obj, spec)
    if not callable(obj):
        raise TypeError(
            f"expected a reward: a function fn(prompts, completions, **kwargs) -> list[float], a callable "
            f"instance, or an import string 'pkg.module:name' naming one; got {obj!r} "
            f"of type {type(obj).__qualname__}{where}"
        )
    return obj


def _instantiate_without_arguments(cls: type, spec: object) -> Any:
    """Instantiate a reward class named by ``spec``, provided its constructor needs no arguments."""
    try:
        inspect.signature(cls).bind()
    except TypeError as exc:
        raise TypeError(
            f"reward spec {spec!r} names the class {cls.__qualname__}, which cannot be constructed without "
            f"arguments ({exc}); pass an instance or a function instead"
        ) from exc
    except ValueError:
        # Some builtin or extension classes expose no signature; just try to construct them.
        pass
    return cls()


def score_completions(fn: RewardFn, prompts: list[str], completions: list[str], **columns: Any) -> np.ndarray:
    """Call a reward once on a batch and check what it returns.

    Args:
        fn: The reward.
        prompts: One prompt per finished episode.
        completions: The completion of each episode, aligned with ``prompts``.
        **columns: Per-example dataset columns (and any extra keys), passed through to ``fn``.

    Returns:
        A float64 array of shape ``(len(prompts),)``. An empty batch returns an empty array without calling
        ``fn``.

    Raises:
        ValueError: if ``prompts`` and ``completions`` differ in length.
        RewardError: if ``fn`` raises, returns the wrong number of values, or returns a value that is not a
            finite real number (NaN, inf, None, a string, a nested sequence...). The message names the reward
            and the offending item with its prompt and completion.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    expected = len(prompts)
    if expected == 0:
        return np.zeros(0, dtype=np.float64)

    name = reward_name(fn)
    try:
        raw = fn(prompts=prompts, completions=completions, **columns)
    except Exception as exc:
        raise RewardError(
            f"reward {name} raised {type(exc).__name__}: {exc} (batch of {expected}; first prompt "
            f"{_quote(prompts[0])}, first completion {_quote(completions[0])})"
        ) from exc

    values = _as_list(raw, name)
    if len(values) != expected:
        raise RewardError(
            f"reward {name} returned {len(values)} values for a batch of {expected} completions"
        )

    scores = np.empty(expected, dtype=np.float64)
    bad: list[tuple[int, object]] = []
    for index, value in enumerate(values):
        number = _as_real(value)
        if number is None or not math.isfinite(number):
            bad.append((index, value))
        else:
            scores[index] = number
    if bad:
        index, value = bad[0]
        others = f" (and {len(bad) - 1} more bad items)" if len(bad) > 1 else ""
        raise RewardError(
            f"reward {name} returned {_quote(value)} at index {index}, which is not a finite number{others}; "
            f"prompt {_quote(prompts[index])}, completion {_quote(completions[index])}"
        )
    return scores


def _as_list(raw: object, name: str) -> list[Any]:
    """Flatten what a reward returned into a Python list, accepting lists, tuples, arrays and tensors."""
    if isinstance(raw, list | tuple):
        return list(raw)
    if isinstance(raw, np.ndarray) or _is_torch_tensor(raw):
        if raw.ndim != 1:
            raise RewardError(
                f"reward {name} returned a {type(raw).__name__} of shape {tuple(raw.shape)}; expected 1-D"
            )
        if _is_torch_tensor(raw):
            raw = raw.detach().cpu()
        return raw.tolist()
    raise RewardError(
        f"reward {name} returned {type(raw).__qualname__} {_quote(raw)}; expected a list of floats"
    )


def _as_real(value: object) -> float | None:
    """``value`` as a float if it is one real number (Python, numpy or 0-d tensor), else None."""
    # float() would happily parse "1.5" or unwrap a one-element list; a reward returning those is a bug.
    if value is None or isinstance(value, str | bytes | list | tuple | dict):
        return None
    if getattr(value, "ndim", 0) != 0:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _is_torch_tensor(value: object) -> bool:
    # If torch was never imported, nothing can be a tensor; avoid importing it just to find out.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _quote(text: object) -> str:
    """``repr`` of ``text`` shortened to about ``_QUOTE_CHARS`` characters."""
    # Prompts may also be chat message lists (TRL's conversational format); quote their repr then.
    if not isinstance(text, str):
        shown = repr(text)
        return shown if len(shown) <= _QUOTE_CHARS else shown[: _QUOTE_CHARS - 3] + "..."
    if len(text) > _QUOTE_CHARS:
        text = text[: _QUOTE_CHARS - 3] + "..."
    return repr(text)
