"""Rewards: functions that score finished text, in TRL's ``fn(prompts, completions, **kwargs)`` convention.

The tasks' own rewards live here too, so that any of them can be reused on another task with
``gym.make(id, reward_fn=...)`` (by object or by import string, e.g. ``"textgym.rewards:vader_sentiment"``).
"""

from textgym.rewards.arithmetic import ArithmeticReward, arithmetic_reward
from textgym.rewards.classifier import SequenceClassifierReward
from textgym.rewards.keywords import keyword_coverage
from textgym.rewards.protocol import RewardError, RewardFn, resolve_reward, reward_name, score_completions
from textgym.rewards.sentiment import negative_sentiment, vader_sentiment
from textgym.rewards.sequence_match import sequence_match
from textgym.rewards.weighted import WeightedSum

__all__ = [
    "ArithmeticReward",
    "RewardError",
    "RewardFn",
    "SequenceClassifierReward",
    "WeightedSum",
    "arithmetic_reward",
    "keyword_coverage",
    "negative_sentiment",
    "resolve_reward",
    "reward_name",
    "score_completions",
    "sequence_match",
    "vader_sentiment",
]
