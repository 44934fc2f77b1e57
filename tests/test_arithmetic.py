"""Arithmetic-v0 pays for right answers only: answers checked against an independent evaluation of each
problem's story and expression, the answer format's edge cases, the split, and a real episode."""

from __future__ import annotations

import ast
import operator
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from textgym.envs import make_vector_env
from textgym.rewards.arithmetic import ArithmeticReward, arithmetic_reward, parse_answer
from textgym.rewards.protocol import score_completions
from textgym.tasks.arithmetic import ArithmeticEnv, ArithmeticTask

# The answer ranges the docs promise, written out rather than read from the module.
DOCUMENTED_RANGE = {1: (1, 38), 2: (1, 990), 3: (1, 740)}
LEVELS = sorted(DOCUMENTED_RANGE)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate_expression(text: str) -> Fraction:
    """Exact value of an expression of integers and + - * / (no eval)."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"unexpected node {ast.dump(node)}")

    return walk(ast.parse(text, mode="eval").body)


def read_story(prompt: str) -> tuple[list[str], list[int]]:
    """The operations and numbers a story tells, read from its wording alone."""
    story = prompt.split("\n")[0]
    sentences = re.split(r"(?<=[.?])\s+", story)[1:-1]  # between the start amount and the question
    ops = []
    for sentence in sentences:
        if "times" in sentence or "multiplied" in sentence:
            ops.append("*")
        elif "groups" in sentence or "bags" in sentence:
            ops.append("/")
        elif "more" in sentence:
            ops.append("+")
        elif re.search(r"\b(gives|loses|sells|uses)\b", sentence):
            ops.append("-")
        else:
            raise AssertionError(f"no operation recognised in {sentence!r}")
    return ops, [int(n) for n in re.findall(r"\d+", story)]


def draw(task: ArithmeticTask, split: str, seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [task.sample(rng, split) for _ in range(n)]


def reachable_answers(num_ops: int, ops: str, max_number: int, max_mul: int, min_div: int) -> set[int]:
    """Every answer a level's rules allow, by exhaustive search over (amount, *s used, /s used)."""
    states = {(a, 0, 0) for a in range(1, max_number + 1)}
    for _ in range(num_ops):
        after = set()
        for x, muls, divs in states:
            if "+" in ops:
                after |= {(x + n, muls, divs) for n in range(1, max_number + 1)}
            if "-" in ops:
                after |= {(x - n, muls, divs) for n in range(1, min(max_number, x - 1) + 1)}
            for k in range(2, 6):
                if "*" in ops and muls < max_mul:
                    after.add((x * k, muls + 1, divs))
                if "/" in ops and x % k == 0:
                    after.add((x // k, muls, divs + 1))
        states = after
    return {x for x, _, divs in states if divs >= min_div}


@pytest.mark.parametrize("difficulty", LEVELS)
def test_oracle_answers_score_one_and_match_the_story(difficulty):
    task = ArithmeticTask(difficulty=difficulty)
    examples = draw(task, "train", 0, 150) + draw(task, "test", 0, 50)
    low, high = DOCUMENTED_RANGE[difficulty]
    for ex in examples:
        value = evaluate_expression(ex["expression"])
        assert type(ex["answer"]) is int and value == ex["answer"] and low <= ex["answer"] <= high
        ops, numbers = read_story(ex["prompt"])
        assert ops == re.findall(r"[-+*/]", ex["expression"]) and len(ops) == difficulty
        assert numbers == [int(n) for n in re.findall(r"\d+", ex["expression"])]
        assert ex["prompt"].endswith('End your reply with "Answer: " followed by the number.')
    prompts, answers = [ex["prompt"] for ex in examples], [ex["answer"] for ex in examples]
    oracle = [f"Answer: {a}" for a in answers]
    assert task.reward(prompts, oracle, answer=answers) == [1.0] * len(examples)
    working = [f"{ex['expression']} = {a}.\nAnswer: {a}" for ex, a in zip(examples, answers, strict=True)]
    assert ArithmeticTask(difficulty, format_reward=0.1).reward(prompts, working, answer=answers) == [
        1.0
    ] * len(examples)
    assert max(task.reward(prompts, [f"Answer: {a + 1}" for a in answers], answer=answers)) == 0.0


@pytest.mark.parametrize(
    ("difficulty", "rules"),
    [(1, (1, "+-", 19, 0, 0)), (2, (2, "+-*", 99, 1, 0)), (3, (3, "+-*/", 99, 1, 1))],
)
def test_documented_answer_range_is_exactly_what_the_rules_allow(difficulty, rules):
    assert (min(reachable_answers(*rules)), max(reachable_answers(*rules))) == DOCUMENTED_RANGE[difficulty]
    every_op = set(rules[1])
    seen = {
        op
        for ex in draw(ArithmeticTask(difficulty), "train", 1, 200)
        for op in ex["expression"]
        if op in "+-*/"
    }
    assert seen == every_op  # the sampler reaches every operation the level names


def test_format_reward_pays_wrong_but_formatted_answers_only():
    reward = ArithmeticReward(format_reward=0.1)
    completions = ["Answer: 12", "Answer: 13", "12", "She has 12 apples.", "Answer: twelve", ""]
    assert reward(["p"] * 6, completions, answer=[12] * 6) == [1.0, 0.1, 0.0, 0.0, 0.0, 0.0]
    assert arithmetic_reward(["p"] * 2, ["Answer: 12", "Answer: 13"], answer=[12, 12]) == [1.0, 0.0]
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match="format_reward"):
            ArithmeticReward(bad)


@pytest.mark.parametrize(
    ("completion", "answer", "score"),
    [
        ("Answer: 12", 12, 1.0),
        ("Answer: 12.", 12, 1.0),
        ("answer: 12.0", 12, 1.0),
        ("ANSWER:12", 12, 1.0),
        ("**Answer:** 12", 12, 1.0),
        ("**Answer**: 12", 12, 1.0),
        ("Final answer: $12", 12, 1.0),
        ("Answer: 12 apples, since 7 + 5 = 12.", 12, 1.0),
        ("Answer: 1,200", 1200, 1.0),
        ("Answer: 1200", "1,200", 1.0),  # string answers are read like completions
        ("Answer: 12", "12", 1.0),
        ("7 + 5 = 12\nAnswer: 12", 12, 1.0),
        ("Answer: 3\nNo wait.\nAnswer: 12", 12, 1.0),  # the last marker counts
        ("Answer: 12\nAnswer: 3", 12, 0.0),
        ("Answer: 12.5", 12, 0.0),
        ("Answer: 120", 12, 0.0),
        ("Answer: 12,000", 12, 0.0),
        ("Answer: -12", 12, 0.0),
        ("Answer: 1,20", 120, 0.0),  # not a thousands group: no number is read
        ("The answer is 12.", 12, 0.0),  # no marker
        ("She has 12 apples now. 12", 12, 0.0),  # a bare final number earns nothing
        ("Answers: 12", 12, 0.0),
    ],
)
def test_answer_parsing(completion, answer, score):
    assert arithmetic_reward(["p"], [completion], answer=[answer]) == [score]


def test_parse_answer_values():
    assert parse_answer("Answer: 1,234,567.50") == Fraction(123456750, 100)
    assert parse_answer("no marker 12") is None
    assert parse_answer("Answer:") is None


def test_reward_goes_through_the_protocol_and_ignores_extra_columns():
    scores = score_completions(
        ArithmeticReward(0.1), ["p", "q"], ["Answer: 5", "Answer: 6"], answer=[5, 5], expression=["2 + 3"] * 2
    )
    assert scores.tolist() == [1.0, 0.1]
    with pytest.raises(ValueError, match="answer column"):
        arithmetic_reward(["p"], ["Answer: 5"], answer=[5.5])


@pytest.mark.parametrize("difficulty", LEVELS)
def test_splits_are_fixed_and_disjoint(difficulty):
    task = ArithmeticTask(difficulty)
    train = {ex["expression"] for ex in draw(task, "train", 0, 300)}
    test = {ex["expression"] for ex in draw(task, "test", 0, 300)}
    assert train and test and not (train & test)
    assert {ex["expression"] for ex in draw(ArithmeticTask(difficulty), "test", 0, 300)} == test
    with pytest.raises(ValueError, match="split='valid'"):
        task.sample(np.random.default_rng(0), "valid")


def test_test_split_holds_about_a_fifth_of_all_computations():
    task = ArithmeticTask(1)
    every = [f"{a} {op} {n}" for a in range(1, 20) for n in range(1, 20) for op in "+-" if op == "+" or a > n]
    share = sum(task.split_of(e) == "test" for e in every) / len(every)
    assert 0.12 < share < 0.28


@pytest.mark.parametrize("difficulty", LEVELS)
def test_sampling_is_deterministic_for_a_seed(difficulty):
    task = ArithmeticTask(difficulty)
    assert draw(task, "train", 7, 20) == draw(ArithmeticTask(difficulty), "train", 7, 20)
    assert draw(task, "train", 7, 20) != draw(task, "train", 8, 20)


@pytest.mark.parametrize("bad", [0, 4, -1, "2", 2.5, True])
def test_difficulty_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match=re.escape(f"difficulty={bad!r}")):
        ArithmeticTask(difficulty=bad)
    with pytest.raises(ValueError, match=re.escape(f"difficulty={bad!r}")):
        ArithmeticEnv(difficulty=bad)  # refused before any model is loaded


@pytest.mark.slow
def test_prompts_fit_the_budgets_with_the_chat_template():
    from textgym.models import load_model

    tokenizer = load_model("smollm2").tokenizer
    for difficulty in LEVELS:
        task = ArithmeticTask(difficulty)
        for ex in draw(task, "train", 3, 100):
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": ex["prompt"]}], add_generation_prompt=True, tokenize=False
            )
            assert len(tokenizer(ids, add_special_tokens=False)["input_ids"]) <= task.prompt_budget


@pytest.mark.slow
def test_scripted_episode_with_the_default_model_scores_one():
    env = ArithmeticEnv(model="smollm2", difficulty=2)
    obs, info = env.reset(seed=0)
    assert "<|im_start|>assistant" in env.tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    assert obs["input_ids"].shape == (112 + 80,)
    answer = env.examples[0]["answer"]
    assert info["prompt"] == env.examples[0]["prompt"]
    actions = [*env.tokenizer(f"Answer: {answer}", add_special_tokens=False)["input_ids"]]
    actions.append(env.eos_token_ids[0])
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and info["stopped"] is True
    assert info["completion"] == f"Answer: {answer}" and info["score"] == 1.0


@pytest.mark.slow
def test_scripted_vector_episode_pays_the_format_bonus():
    envs = make_vector_env(
        ArithmeticEnv,
        num_envs=2,
        model="smollm2",
        format_reward=0.1,
        kl_coef=0.0,
        autoreset_mode=AutoresetMode.DISABLED,
    )
    envs.reset(seed=0)
    answers = [envs.examples[i]["answer"] for i in range(2)]
    eos = envs.eos_token_ids[0]
    texts = [f"Answer: {answers[0]}", f"Answer: {answers[1] + 1}"]
    scripts = [[*envs.tokenizer(t, add_special_tokens=False)["input_ids"], eos] for t in texts]
    scores = {}
    for t in range(max(map(len, scripts))):
        actions = torch.tensor([s[min(t, len(s) - 1)] for s in scripts])
        _, _, terminated, _, info = envs.step(actions)
        for i in terminated.nonzero()[:, 0].tolist():
            scores[i] = float(info["score"][i])
    assert scores == {0: 1.0, 1: pytest.approx(0.1)}
