"""Register every textgym environment with Gymnasium (runs when ``textgym`` is imported).

Gymnasium 1.x has no plugin discovery, so ids exist once ``textgym`` is imported; from libraries that
take only an id string use ``"textgym:textgym/Copy-v0"``. Registered kwargs hold names, never models:
``gym.make`` deep-copies them on every call.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

# id -> (env class, vector env class), as import paths inside textgym.envs
ENVS: dict[str, tuple[str, str]] = {
    "textgym/Pattern-v0": ("textgym.envs.toy:PatternEnv", "textgym.envs.toy:PatternVectorEnv"),
    "textgym/Copy-v0": ("textgym.envs.toy:CopyEnv", "textgym.envs.toy:CopyVectorEnv"),
    "textgym/Reverse-v0": ("textgym.envs.toy:ReverseEnv", "textgym.envs.toy:ReverseVectorEnv"),
    "textgym/Arithmetic-v0": (
        "textgym.envs.arithmetic:ArithmeticEnv",
        "textgym.envs.arithmetic:ArithmeticVectorEnv",
    ),
    "textgym/Keywords-v0": ("textgym.envs.keywords:KeywordsEnv", "textgym.envs.keywords:KeywordsVectorEnv"),
    "textgym/Sentiment-v0": (
        "textgym.envs.sentiment:SentimentEnv",
        "textgym.envs.sentiment:SentimentVectorEnv",
    ),
}


def register_envs() -> None:
    for env_id, (entry_point, vector_entry_point) in ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)
