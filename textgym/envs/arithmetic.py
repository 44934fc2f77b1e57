"""Arithmetic-v0: word problems with verifiable integer answers, in three difficulty levels.

The env class's docstring is its manual; :class:`ArithmeticVectorEnv` is its native vector twin.
"""

from __future__ import annotations

from typing import ClassVar

from textgym.envs.text_env import TextEnv
from textgym.envs.text_vector_env import TextVectorEnv
from textgym.tasks.arithmetic import ArithmeticTask
from textgym.tasks.task import Task


class ArithmeticEnv(TextEnv):
    """Solve a short arithmetic word problem and give the result as ``Answer: <number>``.

    ## Description

    A verifiable-answer task, the kind of reward behind reinforcement learning on reasoning. Each episode
    draws a story about one person's collection from ``np_random`` (names, objects and phrasings vary):
    a start amount, one to three operations, and a question about the final amount, e.g.

    ```text
    Leo starts with 16 books. A friend gives him 10 more books. How many books does he have now?
    End your reply with "Answer: " followed by the number.
    ```

    The completion may work the problem out first; only its last ``Answer: <number>`` counts.
    ``difficulty`` (bounds inclusive, operations applied in story order):

    | level | operations | numbers | answers |
    |---|---|---|---|
    | 1 | one ``+`` or ``-`` | start and amount 1-19 | 1-38 |
    | 2 | two of ``+``, ``-``, ``*`` (at most one ``*``) | start and amounts 1-99, factor 2-5 | 1-990 |
    | 3 | three of ``+``, ``-``, ``*``, ``/`` (at most one ``*``, at least one ``/``) | as level 2 | 1-740 |

    Every intermediate amount and every answer is a positive integer (divisions are exact); problems that
    would break this are redrawn. The examples carry the columns ``answer`` (int), ``expression``
    (e.g. ``"(42 - 3) + 13"``) and ``difficulty``, which reach the reward as keyword lists.

    ## Observation and Action Spaces

    As :class:`textgym.envs.TextEnv`: ``input_ids`` and ``attention_mask`` of length
    ``prompt_budget + generation_budget`` (int64, prompt left-padded into the first ``prompt_budget``
    columns) and ``Discrete(V)``, ``V = 49152`` for the default model.

    ## Rewards

    On the final step, the score of :class:`textgym.rewards.ArithmeticReward`:

    - ``1.0`` when the number after the completion's last ``Answer:`` marker equals the answer. The marker
      is the word "answer" in any case followed by a colon (markdown bold allowed: ``**Answer:** 12``);
      the number may have a decimal part equal to an integer (``12.0``), thousands separators in groups of
      three (``1,200``), and trailing text (``Answer: 12 apples.``);
    - ``format_reward`` (default 0.0) when the marker carries a wrong number;
    - ``0.0`` otherwise, including a correct number without the marker (``"She has 12."``) and
      ``"The answer is 12"``.

    So a correct answer scores exactly 1.0 whatever ``format_reward`` is, and the optimum is 1.0. Each
    step is also shaped by the KL divergence to the frozen default model, ``kl_coef=0.05`` by default.

    ## Episode End

    EOS, or the generation budget, reported as ``terminated``. Budgets per level, in tokens:

    | level | prompt_budget | generation_budget |
    |---|---|---|
    | 1 | 96 | 48 |
    | 2 | 112 | 80 |
    | 3 | 128 | 112 |

    The prompt budgets hold the longest prompts measured with SmolLM2's chat template (79, 95 and 115
    tokens, its default system prompt counting 30); the generation budgets leave SmolLM2 room for about one
    line of working per operation (it writes some 25 tokens each) plus the answer line.

    ## Model

    SmolLM2-135M-Instruct (``"smollm2"``), through its chat template: the prompt is the user message.
    Decoding greedily, it answered 11 of 64 level-1 problems correctly in the format (and formatted 19
    more wrong answers) and none of 32 at levels 2 or 3, which leave room to learn. Any causal LM can be
    named with ``model``.

    ## Arguments

    - ``difficulty``: 1 (default), 2 or 3; anything else raises a ``ValueError``.
    - ``format_reward``: bonus in ``[0, 1)`` for a well-formatted wrong answer (default 0.0).
    - ``test_fraction``: share of computations held out (default 0.2). The split is fixed by a CRC32 hash
      of ``expression``, so a ``split="test"`` problem never shares its numbers and operations with a
      training problem, whatever names or objects tell it.
    - Every :class:`TextEnv` argument (``prompt_budget`` and ``generation_budget`` override the table).

    ```python
    import gymnasium as gym
    import textgym

    env = gym.make("textgym/Arithmetic-v0", difficulty=2, format_reward=0.1)
    obs, info = env.reset(seed=0)
    print(info["prompt"])
    ```

    ## Version History

    - v0: Initial version.
    """

    task_class: ClassVar[type[Task]] = ArithmeticTask


class ArithmeticVectorEnv(TextVectorEnv):
    __doc__ = ArithmeticEnv.__doc__
    task_class: ClassVar[type[Task]] = ArithmeticTask
