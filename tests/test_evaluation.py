"""textgym.evaluate: figures checked against scripted policies and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import independent_ref_logprobs

import textgym
from textgym.evaluation import Evaluation, distinct_n, markdown_table
from textgym.tasks import CopyEnv


def test_distinct_n_by_hand():
    texts = ["a b a b", "a c"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 6)  # unigrams a b a b a c: {a, b, c}
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # bigrams ab ba ab ac: {ab, ba, ac}
    assert distinct_n(["", "x"], 2) == 0.0


def test_markdown_table_rows():
    figures = {"score_stderr": 0.05, "kl": 2.5, "length": 31.25, "eos_rate": 0.125, "distinct_1": 0.9}
    before = Evaluation("textgym/Copy-v1", 32, score=0.21, distinct_2=0.971, perplexity=25.04, **figures)
    after = Evaluation("textgym/Copy-v1", 32, score=0.684, distinct_2=0.949, perplexity=21.09, **figures)
    lines = markdown_table({"before": before, "after": after}).splitlines()
    assert lines[0].startswith("| policy | episodes | score") and len(lines) == 4
    assert lines[2] == "| before | 32 | 0.210 ± 0.050 | 2.500 | 31.2 | 0.12 | 0.971 | 25.04 |"
    assert lines[3].startswith("| after | 32 | 0.684 ± 0.050 |")


def copy_symbols(prompt: str) -> str:
    """The symbols of a Copy-v1 prompt, between "Copy:" and the answer marker: its target."""
    return " ".join(prompt.split()[1:-1])


class CopyOracle:
    """A predict-only policy that reads each prompt from the observation and copies it, then EOS."""

    def __init__(self, bundle, prompt_budget: int):
        self.bundle, self.P = bundle, prompt_budget

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        actions = []
        for ids, mask in zip(observation["input_ids"], observation["attention_mask"], strict=True):
            prompt = self.bundle.tokenizer.decode(
                ids[: self.P][mask[: self.P] == 1], skip_special_tokens=True
            )
            answer = self.bundle.tokenizer(copy_symbols(prompt), add_special_tokens=False)["input_ids"]
            answer.append(self.bundle.eos_token_ids[0])
            actions.append(answer[min(int(mask[self.P :].sum()), len(answer) - 1)])
        return np.array(actions), None


def test_oracle_policy_scores_the_optimum(copy_bundle):
    env = CopyEnv(model=copy_bundle)
    oracle = CopyOracle(copy_bundle, env.prompt_budget)
    result = textgym.evaluate(oracle, "textgym/Copy-v1", episodes=8, num_envs=4, model=copy_bundle)
    assert result.episodes == 8 and result.score == 1.0 and result.score_stderr == 0.0
    assert result.eos_rate == 1.0 and math.isnan(result.kl)  # predict-only: log-probs unknown
    assert result.length == pytest.approx(np.mean([len(c.split()) + 1 for c in result.completions]))
    assert result.completions == [copy_symbols(p) for p in result.prompts]

    # Perplexity: exp of minus the mean reference log-prob per generated token, computed independently.
    total, count = 0.0, 0
    for prompt, completion in zip(result.prompts, result.completions, strict=True):
        answer = copy_bundle.tokenizer(completion, add_special_tokens=False)["input_ids"]
        answer.append(copy_bundle.eos_token_ids[0])
        total += float(independent_ref_logprobs(copy_bundle.model, env.encode_prompt(prompt), answer).sum())
        count += len(answer)
    assert result.perplexity == pytest.approx(math.exp(-total / count), rel=1e-4)


def test_reference_sampling_is_the_zero_kl_baseline_and_reproducible(sharp_bundle):
    a = textgym.evaluate("reference", "textgym/Copy-v1", episodes=8, num_envs=4, model=sharp_bundle, seed=3)
    b = textgym.evaluate("reference", "textgym/Copy-v1", episodes=8, num_envs=4, model=sharp_bundle, seed=3)
    assert a.summary() == b.summary() and a.completions == b.completions
    assert abs(a.kl) < 1e-3  # the policy is the reference
    assert 0.0 <= a.score <= 1.0 and 0.0 <= a.eos_rate <= 1.0 and 1.0 <= a.length <= 6.0
    assert a.perplexity > 1.0
    c = textgym.evaluate("reference", "textgym/Copy-v1", episodes=8, num_envs=4, model=sharp_bundle, seed=4)
    assert c.prompts != a.prompts


def test_the_reference_is_evaluated_without_a_second_pass_to_the_same_figures(sharp_bundle):
    """Sampled at temperature 1, the reference is its own reference: no reference pass is run, and the
    figures equal those of a run that makes one (the same model named as ref_model)."""
    kwargs = {"episodes": 16, "num_envs": 8, "model": sharp_bundle, "seed": 2}
    fast = textgym.evaluate("reference", "textgym/Copy-v1", **kwargs)
    slow = textgym.evaluate("reference", "textgym/Copy-v1", ref_model=sharp_bundle, **kwargs)
    assert fast.completions == slow.completions and fast.score == slow.score and fast.kl == 0.0
    assert abs(slow.kl) < 1e-4
    assert fast.perplexity == pytest.approx(slow.perplexity, rel=1e-5)
    for ref_logprobs in ("step", "episode_end"):  # both delivery timings measure the same
        other = textgym.evaluate(sharp_bundle.model, "textgym/Copy-v1", ref_logprobs=ref_logprobs, **kwargs)
        assert other.completions == fast.completions and other.kl == pytest.approx(0.0, abs=1e-4)


def test_evaluate_on_the_test_split_only(copy_bundle):
    result = textgym.evaluate("reference", "textgym/Copy-v1", episodes=16, num_envs=8, model=copy_bundle)
    task = CopyEnv(model=copy_bundle).task
    assert all(task.split_of(copy_symbols(p)) == "test" for p in result.prompts)


def test_bad_arguments(copy_bundle):
    with pytest.raises(ValueError, match="kl_coef > 0"):
        textgym.evaluate("reference", "textgym/Copy-v1", episodes=4, model=copy_bundle, kl_coef=0.0)
    with pytest.raises(ValueError, match="'greedy'"):
        textgym.evaluate("greedy", "textgym/Copy-v1", episodes=4, model=copy_bundle)
    with pytest.raises(TypeError, match=r"causal LM \(torch.nn.Module\) or have predict"):
        textgym.evaluate(object(), "textgym/Copy-v1", episodes=4, model=copy_bundle)
