"""Text tasks, one file each: its data, prompt source, manual and env class (see ``CONTRIBUTING.md``)."""

from textgym.tasks.arithmetic import ArithmeticEnv, ArithmeticTask
from textgym.tasks.keywords import KeywordsEnv, KeywordsTask
from textgym.tasks.sentiment import SentimentEnv, SentimentTask
from textgym.tasks.toy import CopyEnv, CopyTask, PatternEnv, PatternTask, ReverseEnv, ReverseTask

__all__ = [
    "ArithmeticEnv",
    "ArithmeticTask",
    "CopyEnv",
    "CopyTask",
    "KeywordsEnv",
    "KeywordsTask",
    "PatternEnv",
    "PatternTask",
    "ReverseEnv",
    "ReverseTask",
    "SentimentEnv",
    "SentimentTask",
]
