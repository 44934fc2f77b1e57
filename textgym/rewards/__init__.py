"""Rewards: functions that score finished text, in TRL's ``fn(prompts, completions, **kwargs)`` convention."""

from textgym.rewards.classifier import SequenceClassifierReward
from textgym.rewards.protocol import RewardError, RewardFn, resolve_reward, reward_name, score_completions
from textgym.rewards.weighted import WeightedSum

__all__ = [
    "RewardError",
    "RewardFn",
    "SequenceClassifierReward",
    "WeightedSum",
    "resolve_reward",
    "reward_name",
    "score_completions",
]
