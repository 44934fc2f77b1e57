"""Register every textgym environment with Gymnasium (runs when ``textgym`` is imported).

Gymnasium 1.x has no plugin discovery, so ids exist once ``textgym`` is imported; from libraries that
take only an id string use ``"textgym:textgym/Copy-v1"``. Registered kwargs hold names, never models:
``gym.make`` deep-copies them on every call.
"""

from __future__ import annotations

import functools

import gymnasium as gym
from gymnasium.envs.registration import registry

from textgym.envs import TextEnv, make_vector_env
from textgym.importing import import_object
from textgym.task import TaskInfo

# id -> the task's env class, as an import path. A new task is one file in textgym/tasks/ plus one line here.
ENVS: dict[str, str] = {
    "textgym/Pattern-v0": "textgym.tasks.toy:PatternEnv",
    "textgym/Copy-v1": "textgym.tasks.toy:CopyEnv",
    "textgym/Reverse-v1": "textgym.tasks.toy:ReverseEnv",
    "textgym/Arithmetic-v0": "textgym.tasks.arithmetic:ArithmeticEnv",
    "textgym/Keywords-v0": "textgym.tasks.keywords:KeywordsEnv",
    "textgym/Sentiment-v0": "textgym.tasks.sentiment:SentimentEnv",
}


def register_env(env_id: str, env_class: type[TextEnv] | str, **kwargs) -> None:
    """Register a task's env class under ``env_id`` for ``gym.make`` and, natively, ``gym.make_vec``.

    ``env_class`` is a :class:`TextEnv` subclass or its ``"pkg.module:Class"`` path (imported on first
    use); its vector face is built by :func:`textgym.envs.make_vector_env`. ``kwargs`` become the
    registered defaults (names and numbers only: ``gym.make`` deep-copies them on every call).
    """
    gym.register(
        id=env_id,
        entry_point=env_class,
        vector_entry_point=functools.partial(make_vector_env, env_class),
        kwargs=kwargs,
    )


def register_envs() -> None:
    for env_id, env_class in ENVS.items():
        if env_id not in registry:
            register_env(env_id, env_class)


def task_info(env_id: str) -> TaskInfo:
    """The metadata of a registered textgym env's task at its default arguments (no model is loaded)."""
    entry_point = gym.spec(env_id).entry_point
    env_class = import_object(entry_point) if isinstance(entry_point, str) else entry_point
    if not (isinstance(env_class, type) and issubclass(env_class, TextEnv)) or env_class.task_class is None:
        raise ValueError(f"{env_id!r} is not a textgym task env (its entry point is {entry_point!r})")
    return env_class.task_class().info()
