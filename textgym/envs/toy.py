"""The toy suite's environments: Pattern, Copy and Reverse (graded difficulty, optimum 1.0).

Each env class's docstring is its manual; the matching ``*VectorEnv`` is its native vector twin.
"""

from __future__ import annotations

from typing import ClassVar

from textgym.envs.text_env import TextEnv
from textgym.envs.text_vector_env import TextVectorEnv
from textgym.tasks import CopyTask, PatternTask, ReverseTask, Task

_COMMON = """
    ## Observation and Action Spaces

    As :class:`textgym.envs.TextEnv`: ``input_ids`` and ``attention_mask`` of length
    ``64 + generation_budget`` (int64, prompt left-padded into the first 64 columns) and ``Discrete(V)``
    with ``V`` the model's logits dimension (16 for the default tiny model).

    ## Rewards

    ``score = matches / max(len(target), len(completion))`` over whitespace-separated words
    (:func:`textgym.rewards.sequence_match`), paid on the final step; only the exact target scores the
    optimum, 1.0. KL shaping is off by default (``kl_coef=0``): the default model is randomly initialised,
    so its reference is no prior worth keeping. Pass ``kl_coef`` to turn it on.

    ## Episode End

    EOS, or ``generation_budget = max_length + 2`` tokens (room for the answer and its EOS), reported as
    ``terminated``.

    ## Model

    By default a tiny Llama (2 layers, width 64) with a SentencePiece word tokenizer trained on the
    task's own vocabulary, built locally in seconds with fixed seeds. ``model="smollm2"`` (or any causal
    LM) runs the same task through the model's chat template.
"""


class PatternEnv(TextEnv):
    __doc__ = (
        """Write a fixed secret pattern of symbols, whatever the prompt (level 1 of 3).

    ## Description

    The prompt is always ``"Write the secret pattern:"`` and the target is the ``pattern`` argument
    (default ``"b d a c"``). Nothing in the prompt reveals it: the agent must find it by exploration, a
    bandit over token sequences. It tells whether an algorithm learns at all.
    """
        + _COMMON
        + """
    ## Arguments

    ``pattern``: the target, symbols ``a``-``h`` separated by spaces. Every :class:`TextEnv` argument.
    Both splits hold the one prompt.

    ```python
    env = gym.make("textgym/Pattern-v0", pattern="a a b")
    ```

    ## Version History

    - v0: Initial version.
    """
    )
    task_class: ClassVar[type[Task]] = PatternTask


class CopyEnv(TextEnv):
    __doc__ = (
        """Copy a string of 2-4 symbols (level 2 of 3).

    ## Description

    The prompt is ``"Copy: c a f"`` for random symbols from ``a``-``h``; the target is ``"c a f"``. The
    agent must attend to the prompt and stop after the last symbol.
    """
        + _COMMON
        + """
    ## Arguments

    ``min_length``, ``max_length`` (2 and 4): the string length range; ``test_fraction`` (0.2): share of
    strings in the held-out split, chosen by a content hash so it is fixed everywhere. Every
    :class:`TextEnv` argument.

    ```python
    env = gym.make("textgym/Copy-v0", max_length=6, split="test")
    ```

    ## Version History

    - v0: Initial version.
    """
    )
    task_class: ClassVar[type[Task]] = CopyTask


class ReverseEnv(TextEnv):
    __doc__ = (
        """Write a string of 2-4 symbols in reverse order (level 3 of 3).

    ## Description

    The prompt is ``"Reverse: c a f"``; the target is ``"f a c"``. The first token to write depends on
    the last prompt symbol, the next on the one before: harder than copying.
    """
        + _COMMON
        + """
    ## Arguments

    ``min_length``, ``max_length`` (2 and 4), ``test_fraction`` (0.2), as in ``Copy-v0``. Every
    :class:`TextEnv` argument.

    ```python
    env = gym.make("textgym/Reverse-v0", kl_coef=0.02)
    ```

    ## Version History

    - v0: Initial version.
    """
    )
    task_class: ClassVar[type[Task]] = ReverseTask


class PatternVectorEnv(TextVectorEnv):
    __doc__ = PatternEnv.__doc__
    task_class: ClassVar[type[Task]] = PatternTask


class CopyVectorEnv(TextVectorEnv):
    __doc__ = CopyEnv.__doc__
    task_class: ClassVar[type[Task]] = CopyTask


class ReverseVectorEnv(TextVectorEnv):
    __doc__ = ReverseEnv.__doc__
    task_class: ClassVar[type[Task]] = ReverseTask
