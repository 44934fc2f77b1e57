"""Ratings of players (policies) from pairwise games: online Elo, the Bradley-Terry fit, bootstrap intervals.

A game is ``(a, b, score)``: players ``a`` and ``b`` (indices), ``score`` 1 when ``a`` won, 0 when ``b``
did, 0.5 for a tie. Both ratings are on the Elo scale (400 points: 10-to-1 odds), centred on 1000.

- **Online Elo**: ``E_a = 1 / (1 + 10^((R_b - R_a) / 400))``, then ``R_a += K (S_a - E_a)`` and the
  opposite for ``b``, game after game. The result depends on the order of the games, which here is
  arbitrary (all policies answered the same prompts at once), so :func:`elo_ratings` averages the final
  ratings over ``orders`` random orders of the same games (the mean is order-free up to its sampling
  error; Chatbot Arena does the same).
- **Bradley-Terry**: the maximum-likelihood strengths of ``P(a beats b) = sigmoid(theta_a - theta_b)``, a
  tie counting half a win each way, fitted by Newton's method with a weak Gaussian prior (so that a
  player who won or lost every game gets a finite rating). Order-free by construction; the rating Elo
  estimates.

:func:`bootstrap_intervals` resamples the games with replacement and refits, for percentile intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Game = tuple[int, int, float]
SCALE = 400 / math.log(10)  # Elo points per unit of log-odds


def _check(games: Sequence[Game], players: int) -> np.ndarray:
    array = np.asarray(games, dtype=np.float64).reshape(-1, 3)
    if len(array) == 0:
        raise ValueError("no games to rate")
    ids = array[:, :2]
    if (ids < 0).any() or (ids >= players).any() or (ids != np.round(ids)).any():
        raise ValueError(
            f"players must be indices in [0, {players}), got {sorted(set(ids.ravel().tolist()))}"
        )
    if not np.isin(array[:, 2], (0.0, 0.5, 1.0)).all():
        raise ValueError(f"a game's score must be 1, 0.5 or 0, got {sorted(set(array[:, 2].tolist()))}")
    return array


def elo_ratings(
    games: Sequence[Game], players: int, *, k: float = 16.0, orders: int = 100, seed: int = 0
) -> np.ndarray:
    """``(players,)`` online Elo ratings, the mean over ``orders`` random orders of ``games``."""
    array = _check(games, players)
    rng = np.random.default_rng(seed)
    total = np.zeros(players)
    for _ in range(orders):
        ratings = np.full(players, 1000.0)
        for a, b, score in array[rng.permutation(len(array))]:
            a, b = int(a), int(b)
            expected = 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / 400.0))
            ratings[a] += k * (score - expected)
            ratings[b] -= k * (score - expected)
        total += ratings
    return total / orders


def bradley_terry_ratings(games: Sequence[Game], players: int, *, prior: float = 0.01) -> np.ndarray:
    """``(players,)`` Bradley-Terry maximum-a-posteriori strengths on the Elo scale, mean 1000.

    ``prior`` is the precision of a zero-mean Gaussian on the log-strengths (a weak pull to the mean that
    keeps undefeated players finite).
    """
    array = _check(games, players)
    a, b, score = array[:, 0].astype(int), array[:, 1].astype(int), array[:, 2]
    theta = np.zeros(players)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))
        grad = -prior * theta
        np.add.at(grad, a, score - p)
        np.add.at(grad, b, p - score)
        w = p * (1 - p)
        hess = -prior * np.eye(players)
        np.add.at(hess, (a, a), -w)
        np.add.at(hess, (b, b), -w)
        np.add.at(hess, (a, b), w)
        np.add.at(hess, (b, a), w)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]  # without a prior, ratings are free up to a shift
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return 1000.0 + SCALE * (theta - theta.mean())


def bootstrap_intervals(
    games: Sequence[Game],
    players: int,
    rate: Callable[[np.ndarray, int], np.ndarray],
    *,
    samples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``, each ``(players,)``: percentile intervals of ``rate(games, players)`` over
    ``samples`` resamplings of the games with replacement."""
    array = _check(games, players)
    rng = np.random.default_rng(seed)
    draws = np.stack([rate(array[rng.integers(0, len(array), len(array))], players) for _ in range(samples)])
    tail = (1 - level) / 2 * 100
    return np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)


def round_robin(values: np.ndarray, *, temperature: float = 0.0, seed: int = 0) -> list[Game]:
    """Every pair of players on every prompt, judged by ``values`` ``(players, prompts)``.

    ``values[p, i]`` is what the judge sees of player ``p``'s completion of prompt ``i`` (a gold or learned
    reward). With ``temperature`` 0 the higher value wins and equal values tie; above 0 the judge is the
    simulated annotator: ``a`` wins with probability ``sigmoid((v_a - v_b) / temperature)``.
    """
    values = np.asarray(values, dtype=np.float64)
    players, prompts = values.shape
    rng = np.random.default_rng(seed)
    games: list[Game] = []
    for a in range(players):
        for b in range(a + 1, players):
            d = values[a] - values[b]
            if temperature == 0:
                scores = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
            else:
                scores = (rng.random(prompts) < 1.0 / (1.0 + np.exp(-d / temperature))).astype(float)
            games += [(a, b, float(s)) for s in scores]
    return games


@dataclass
class Standings:
    """Ratings of named players with their 95% bootstrap intervals."""

    names: list[str]
    games: int
    elo: np.ndarray
    elo_interval: tuple[np.ndarray, np.ndarray]
    bradley_terry: np.ndarray
    bradley_terry_interval: tuple[np.ndarray, np.ndarray]
    win_rate: np.ndarray  # share of its games each player won, a tie counting half

    def to_json(self) -> dict[str, Any]:
        return {
            "games": self.games,
            "players": [
                {
                    "name": name,
                    "elo": float(self.elo[i]),
                    "elo_95": [float(self.elo_interval[0][i]), float(self.elo_interval[1][i])],
                    "bradley_terry": float(self.bradley_terry[i]),
                    "bradley_terry_95": [
                        float(self.bradley_terry_interval[0][i]),
                        float(self.bradley_terry_interval[1][i]),
                    ],
                    "win_rate": float(self.win_rate[i]),
                }
                for i, name in enumerate(self.names)
            ],
        }


def standings(games: Sequence[Game], names: Sequence[str], *, samples: int = 200, seed: int = 0) -> Standings:
    """Elo (mean over 100 orders) and Bradley-Terry ratings of ``names`` with bootstrap intervals.

    Each bootstrap sample of the Elo ratings plays its resampled games in one random order, so the
    interval also holds the order's effect.
    """
    players = len(names)
    array = _check(games, players)
    wins, played = np.zeros(players), np.zeros(players)
    np.add.at(wins, array[:, 0].astype(int), array[:, 2])
    np.add.at(wins, array[:, 1].astype(int), 1 - array[:, 2])
    np.add.at(played, array[:, 0].astype(int), 1)
    np.add.at(played, array[:, 1].astype(int), 1)
    counter = iter(range(samples))
    return Standings(
        names=list(names),
        games=len(array),
        elo=elo_ratings(array, players, seed=seed),
        elo_interval=bootstrap_intervals(
            array,
            players,
            lambda g, n: elo_ratings(g, n, orders=1, seed=seed + next(counter)),
            samples=samples,
            seed=seed,
        ),
        bradley_terry=bradley_terry_ratings(array, players),
        bradley_terry_interval=bootstrap_intervals(
            array, players, bradley_terry_ratings, samples=samples, seed=seed
        ),
        win_rate=wins / np.maximum(played, 1),
    )


def pairings(
    prompts: Sequence[str], completions: Sequence[Sequence[str]], seed: int = 0
) -> tuple[list, list]:
    """A person's share of a round robin: one item per prompt and pair of players, shown in a random order.

    Args:
        prompts: the held-out prompts, ``(N,)``.
        completions: each player's completions of them, ``(players, N)``.

    Returns:
        ``items`` (:class:`~textgym.preferences.annotate.Item`, two completions each) for an annotation
        session, and ``pairs``: for each item, the players shown first and second.
    """
    from textgym.preferences.annotate import Item

    rng = np.random.default_rng(seed)
    items, pairs = [], []
    players = len(completions)
    for i, prompt in enumerate(prompts):
        for a in range(players):
            for b in range(a + 1, players):
                first, second = (a, b) if rng.random() < 0.5 else (b, a)
                items.append(Item(prompt, (completions[first][i], completions[second][i])))
                pairs.append((first, second))
    order = rng.permutation(len(items))  # not all of one pairing in a row
    return [items[j] for j in order], [pairs[j] for j in order]


def games_from_session(session: Any, pairs: Sequence[tuple[int, int]]) -> list[Game]:
    """The games a person decided in an annotation session built by :func:`pairings` (skips are no game;
    a tie, or two identical completions, is half a win each)."""
    from textgym.preferences.data import read_preferences

    answers = iter(read_preferences(session.out) if session.out.is_file() else [])
    games: list[Game] = []
    for decision in session.decisions:
        if not decision["answer"]:
            continue
        record = next(answers)
        item = session.items[decision["item"]]
        first, second = pairs[decision["item"]]
        if record.tie or item.completions[0] == item.completions[1]:
            games.append((first, second, 0.5))
        else:
            games.append((first, second, 1.0 if record.chosen == item.completions[0] else 0.0))
    return games
