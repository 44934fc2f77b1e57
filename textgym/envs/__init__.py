"""Gymnasium environments over text generation."""

from textgym.envs.arithmetic import ArithmeticEnv, ArithmeticVectorEnv
from textgym.envs.generation_batch import GenerationBatch
from textgym.envs.keywords import KeywordsEnv, KeywordsVectorEnv
from textgym.envs.sentiment import SentimentEnv, SentimentVectorEnv
from textgym.envs.text_env import TextEnv
from textgym.envs.text_vector_env import TextVectorEnv
from textgym.envs.toy import (
    CopyEnv,
    CopyVectorEnv,
    PatternEnv,
    PatternVectorEnv,
    ReverseEnv,
    ReverseVectorEnv,
)

__all__ = [
    "ArithmeticEnv",
    "ArithmeticVectorEnv",
    "CopyEnv",
    "CopyVectorEnv",
    "GenerationBatch",
    "KeywordsEnv",
    "KeywordsVectorEnv",
    "PatternEnv",
    "PatternVectorEnv",
    "ReverseEnv",
    "ReverseVectorEnv",
    "SentimentEnv",
    "SentimentVectorEnv",
    "TextEnv",
    "TextVectorEnv",
]
