"""Word-by-word match against a target string: the toy suite's reward, exact about what "solved" means."""

from __future__ import annotations

from typing import Any


def sequence_match(
    prompts: list[str], completions: list[str], target: list[str], **kwargs: Any
) -> list[float]:
    """Fraction of positions where the completion's words equal the target's.

    Both texts are split on whitespace; the score is ``matches / max(len(target), len(completion))``, so
    extra or missing words cost as much as wrong ones and only the exact target scores 1.0.
    """
    scores = []
    for completion, goal in zip(completions, target, strict=True):
        got, want = completion.split(), goal.split()
        matches = sum(g == w for g, w in zip(got, want, strict=False))
        scores.append(matches / max(len(want), len(got), 1))
    return scores
