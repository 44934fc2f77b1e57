"""Text tasks: prompt sources and their rewards."""

from textgym.tasks.arithmetic import ArithmeticTask
from textgym.tasks.keywords import KeywordsTask
from textgym.tasks.sentiment import SentimentTask
from textgym.tasks.task import Example, Task
from textgym.tasks.toy import CopyTask, PatternTask, ReverseTask

__all__ = [
    "ArithmeticTask",
    "CopyTask",
    "Example",
    "KeywordsTask",
    "PatternTask",
    "ReverseTask",
    "SentimentTask",
    "Task",
]
