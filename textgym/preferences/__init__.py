"""Human feedback: preference data, the losses that fit a reward to it, a simulated annotator, reward models.

See :mod:`textgym.preferences.data` for the JSONL schemas and :mod:`textgym.preferences.reward_model` for
training one.
"""

from textgym.preferences.data import (
    Comparison,
    Preference,
    PreferenceDataError,
    Ranking,
    append_preference,
    read_preferences,
    write_preferences,
)
from textgym.preferences.losses import bradley_terry_loss, plackett_luce_loss, tie_loss
from textgym.preferences.reward_model import (
    RewardModelConfig,
    RewardModelReport,
    train_reward_model,
)
from textgym.preferences.simulated import SimulatedAnnotator

__all__ = [
    "Comparison",
    "Preference",
    "PreferenceDataError",
    "Ranking",
    "RewardModelConfig",
    "RewardModelReport",
    "SimulatedAnnotator",
    "append_preference",
    "bradley_terry_loss",
    "plackett_luce_loss",
    "read_preferences",
    "tie_loss",
    "train_reward_model",
    "write_preferences",
]
