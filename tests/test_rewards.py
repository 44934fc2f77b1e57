"""Behaviour of textgym.rewards: the reward contract, WeightedSum and SequenceClassifierReward."""

from __future__ import annotations

import functools
import math
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from textgym.rewards import (
    RewardError,
    SequenceClassifierReward,
    WeightedSum,
    resolve_reward,
    reward_name,
    score_completions,
)

PROMPTS = ["Q1: ", "Q2: ", "Q3: "]
COMPLETIONS = ["short", "a bit longer", "the longest completion of the three"]


def length_reward(prompts, completions, **kwargs):
    return [float(len(c)) for c in completions]


def constant_reward(prompts, completions, **kwargs):
    return [1.0] * len(completions)


class CallableReward:
    def __call__(self, prompts, completions, **kwargs):
        return [0.0] * len(completions)


def returning(values):
    """A reward that ignores its input and returns ``values``."""

    def reward(prompts, completions, **kwargs):
        return values

    return reward


# --- resolve_reward ----------------------------------------------------------------------------------------


@pytest.fixture
def reward_module(tmp_path, monkeypatch):
    """The name of a freshly written importable module holding a few reward specs."""
    name = f"reward_module_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            def exact_match(prompts, completions, target, **kwargs):
                return [float(c == t) for c, t in zip(completions, target)]

            class NoArgs:
                def __call__(self, prompts, completions, **kwargs):
                    return [2.0] * len(completions)

            class NeedsArgs:
                def __init__(self, scale):
                    self.scale = scale

                def __call__(self, prompts, completions, **kwargs):
                    return [self.scale] * len(completions)

            NOT_CALLABLE = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_resolve_import_string_to_function(reward_module):
    fn = resolve_reward(f"{reward_module}:exact_match")
    scores = score_completions(fn, ["p", "p"], ["yes", "no"], target=["yes", "yes"])
    assert scores.tolist() == [1.0, 0.0]
    assert reward_name(fn) == f"{reward_module}.exact_match"


def test_resolve_import_string_to_class_instantiates_it(reward_module):
    fn = resolve_reward(f"{reward_module}:NoArgs")
    assert type(fn).__name__ == "NoArgs"
    assert fn(["p"], ["c"]) == [2.0]


def test_resolve_class_needing_arguments_is_a_type_error(reward_module):
    spec = f"{reward_module}:NeedsArgs"
    with pytest.raises(TypeError, match="pass an instance or a function") as info:
        resolve_reward(spec)
    assert spec in str(info.value)


def test_resolve_non_callable_names_spec_and_value(reward_module):
    spec = f"{reward_module}:NOT_CALLABLE"
    with pytest.raises(TypeError) as info:
        resolve_reward(spec)
    assert spec in str(info.value) and "42" in str(info.value)


@pytest.mark.parametrize("value", [42, None, [length_reward]])
def test_resolve_rejects_non_callables(value):
    with pytest.raises(TypeError, match="expected a reward") as info:
        resolve_reward(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("no_colon_here", ValueError),
        ("a:b:c", ValueError),
        ("textgym_no_such_module_xyz:fn", ImportError),
        ("textgym.rewards:no_such_reward", ImportError),
    ],
)
def test_resolve_bad_import_strings(spec, error):
    with pytest.raises(error, match=r"no_colon_here|a:b:c|textgym_no_such_module_xyz|no_such_reward"):
        resolve_reward(spec)


def test_resolve_passes_live_callables_through():
    instance = CallableReward()
    assert resolve_reward(length_reward) is length_reward
    assert resolve_reward(instance) is instance


def test_resolve_reward_class_that_needs_a_model():
    with pytest.raises(TypeError, match="SequenceClassifierReward"):
        resolve_reward("textgym.rewards:SequenceClassifierReward")


# --- reward_name -------------------------------------------------------------------------------------------


def test_reward_names():
    assert reward_name(length_reward) == f"{__name__}.length_reward"
    assert reward_name(functools.partial(length_reward, extra=1)) == f"{__name__}.length_reward"
    assert reward_name(CallableReward()) == "CallableReward"
    assert reward_name(CallableReward().__call__) == f"{__name__}.CallableReward.__call__"
    assert reward_name(len) == "len"
    ws = WeightedSum({length_reward: 0.5, CallableReward(): -1.0})
    assert reward_name(ws) == f"WeightedSum(0.5*{__name__}.length_reward - 1.0*CallableReward)"


# --- score_completions: what passes ------------------------------------------------------------------------


def test_columns_and_extra_keys_pass_through():
    seen = {}

    def reward(prompts, completions, target, **kwargs):
        seen.update(prompts=prompts, target=target, **kwargs)
        return [float(c == t) for c, t in zip(completions, target, strict=True)]

    scores = score_completions(reward, PROMPTS, COMPLETIONS, target=["short", "x", "y"], step=7)
    assert scores.dtype == np.float64 and scores.shape == (3,)
    assert scores.tolist() == [1.0, 0.0, 0.0]
    assert seen == {"prompts": PROMPTS, "target": ["short", "x", "y"], "step": 7}


def test_trl_style_reward_without_prompts_parameter():
    def reward(completions, **kwargs):
        return [float(len(c)) for c in completions]

    assert score_completions(reward, PROMPTS, COMPLETIONS).tolist() == [float(len(c)) for c in COMPLETIONS]


@pytest.mark.parametrize(
    "output",
    [
        [1, 2.5, -3.0],
        (1, 2.5, -3.0),
        np.array([1, 2.5, -3.0], dtype=np.float32),
        np.array([1, 2.5, -3.0], dtype=object),
        [np.float32(1), np.float64(2.5), np.int64(-3)],
        torch.tensor([1, 2.5, -3.0], requires_grad=True),
        torch.tensor([1, 2.5, -3.0], dtype=torch.bfloat16),
        [torch.tensor(1.0), torch.tensor(2.5), torch.tensor(-3.0)],
    ],
    ids=[
        "list",
        "tuple",
        "float32-array",
        "object-array",
        "numpy-scalars",
        "grad-tensor",
        "bf16",
        "0d-tensors",
    ],
)
def test_accepted_output_types(output):
    scores = score_completions(returning(output), PROMPTS, COMPLETIONS)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, [1.0, 2.5, -3.0])


def test_bools_count_as_zero_and_one():
    assert score_completions(returning([True, False, True]), PROMPTS, COMPLETIONS).tolist() == [1, 0, 1]


def test_empty_batch_does_not_call_the_reward():
    def reward(prompts, completions, **kwargs):
        raise AssertionError("called")

    assert score_completions(reward, [], []).shape == (0,)


def test_mismatched_prompts_and_completions():
    with pytest.raises(ValueError, match="3 prompts but 2 completions"):
        score_completions(length_reward, PROMPTS, COMPLETIONS[:2])


# --- score_completions: what fails -------------------------------------------------------------------------


def test_raising_reward_is_chained_and_named():
    def exploding_reward(prompts, completions, **kwargs):
        raise KeyError("target")

    long_prompt = "P" * 500
    with pytest.raises(RewardError) as info:
        score_completions(exploding_reward, [long_prompt, "b"], ["first completion", "c"])
    message = str(info.value)
    assert isinstance(info.value.__cause__, KeyError)
    assert "exploding_reward" in message and "KeyError" in message and "batch of 2" in message
    assert "first completion" in message
    assert "P" * 60 in message and "P" * 100 not in message, "the prompt must be quoted, truncated"


def test_missing_column_surfaces_as_reward_error():
    def needs_target(prompts, completions, target, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(RewardError, match=r"needs_target.*target"):
        score_completions(needs_target, PROMPTS, COMPLETIONS)


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), -math.inf, None, "0.5", [0.5], np.array([0.5]), 1 + 2j, np.nan],
    ids=["nan", "inf", "-inf", "None", "str", "list", "array", "complex", "np.nan"],
)
def test_bad_item_names_reward_index_value_and_episode(bad):
    output = [0.0, bad, 1.0]
    with pytest.raises(RewardError) as info:
        score_completions(returning(output), PROMPTS, COMPLETIONS)
    message = str(info.value)
    assert "returning.<locals>.reward" in message
    assert "index 1" in message
    assert repr(bad) in message
    assert repr(PROMPTS[1]) in message and repr(COMPLETIONS[1]) in message


def test_bad_items_in_tensors_are_caught():
    with pytest.raises(RewardError, match="nan at index 2"):
        score_completions(returning(torch.tensor([0.0, 1.0, float("nan")])), PROMPTS, COMPLETIONS)


def test_several_bad_items_report_the_first_and_count():
    with pytest.raises(RewardError, match=r"index 0.*and 1 more"):
        score_completions(returning([None, 1.0, math.inf]), PROMPTS, COMPLETIONS)


@pytest.mark.parametrize("output", [[1.0, 2.0], [1.0] * 4, []])
def test_wrong_length(output):
    with pytest.raises(RewardError) as info:
        score_completions(returning(output), PROMPTS, COMPLETIONS)
    assert f"returned {len(output)} values for a batch of 3" in str(info.value)
    assert "reward" in str(info.value)


@pytest.mark.parametrize(
    "output",
    [np.ones((3, 1)), torch.ones(3, 1), torch.tensor(1.0), 1.0, {"a": 1.0}, "1.0", None, iter([1.0] * 3)],
    ids=["2d-array", "2d-tensor", "0d-tensor", "float", "dict", "str", "None", "iterator"],
)
def test_output_that_is_not_a_flat_sequence(output):
    with pytest.raises(RewardError, match=r"returning\.<locals>\.reward returned"):
        score_completions(returning(output), PROMPTS, COMPLETIONS)


# --- WeightedSum -------------------------------------------------------------------------------------------


def test_weighted_sum_matches_hand_computation(reward_module):
    ws = WeightedSum({length_reward: 0.5, f"{reward_module}:exact_match": 2.0, constant_reward: -1.0})
    scores = score_completions(ws, PROMPTS, COMPLETIONS, target=["short", "no", "no"])
    expected = [0.5 * len(c) + 2.0 * (c == "short") - 1.0 for c in COMPLETIONS]
    np.testing.assert_allclose(scores, expected)
    assert ws.last_components is not None
    assert list(ws.last_components) == [
        f"{__name__}.length_reward",
        f"{reward_module}.exact_match",
        f"{__name__}.constant_reward",
    ]
    np.testing.assert_array_equal(ws.last_components[f"{reward_module}.exact_match"], [1.0, 0.0, 0.0])


def test_weighted_sum_list_form_parts_and_repr():
    ws = WeightedSum([(length_reward, 0.5), (length_reward, 1), (CallableReward(), 3.0)])
    assert [w for _, w in ws.parts] == [0.5, 1.0, 3.0]
    assert all(isinstance(w, float) for _, w in ws.parts)
    assert ws.parts[0][0] is length_reward
    assert repr(ws) == (
        f"WeightedSum(0.5*{__name__}.length_reward + 1.0*{__name__}.length_reward + 3.0*CallableReward)"
    )
    parts = ws.score_parts(PROMPTS, COMPLETIONS)
    assert list(parts) == [f"{__name__}.length_reward", f"{__name__}.length_reward#2", "CallableReward"]
    np.testing.assert_allclose(ws(PROMPTS, COMPLETIONS), [1.5 * len(c) for c in COMPLETIONS])


def test_weighted_sum_error_names_failing_part():
    def broken_part(prompts, completions, **kwargs):
        return [0.0, float("nan"), 0.0]

    ws = WeightedSum({length_reward: 1.0, broken_part: 0.5})
    with pytest.raises(RewardError) as info:
        score_completions(ws, PROMPTS, COMPLETIONS)
    message = str(info.value)
    assert "broken_part" in message and "index 1" in message and repr(COMPLETIONS[1]) in message
    assert "WeightedSum(" in message


@pytest.mark.parametrize(
    "parts",
    [{}, [], {length_reward: float("nan")}, {length_reward: "1"}, {length_reward: True}, [(length_reward,)]],
    ids=["empty-dict", "empty-list", "nan-weight", "str-weight", "bool-weight", "not-a-pair"],
)
def test_weighted_sum_rejects_bad_parts(parts):
    with pytest.raises(ValueError):
        WeightedSum(parts)


def test_weighted_sum_rejects_unresolvable_part():
    with pytest.raises(TypeError, match="expected a reward"):
        WeightedSum({42: 1.0})
    with pytest.raises(ImportError):
        WeightedSum({"textgym_no_such_module_xyz:fn": 1.0})


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda batch: st.lists(
            st.tuples(finite, st.lists(finite, min_size=batch, max_size=batch)), min_size=1, max_size=5
        )
    )
)
def test_weighted_sum_equals_manual_sum(weighted_values):
    batch = len(weighted_values[0][1])
    ws = WeightedSum([(returning(values), weight) for weight, values in weighted_values])
    expected = [sum(weight * values[i] for weight, values in weighted_values) for i in range(batch)]
    scores = score_completions(ws, ["p"] * batch, ["c"] * batch)
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-6)
    assert len(ws.last_components) == len(weighted_values)


# --- SequenceClassifierReward ------------------------------------------------------------------------------

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[CLS]", "[SEP]"]
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "fast", "slow", "happy", "sad", "film", "very"]
VOCAB = {tok: i for i, tok in enumerate([*SPECIALS, *WORDS])}
PAD, BOS, EOS = VOCAB["[PAD]"], VOCAB["[BOS]"], VOCAB["[EOS]"]
TEXTS = ["the cat sat on the mat", "dog", "a very very happy dog ran fast on the mat", "sad film"]


def make_tokenizer(template: str, specials: list[str], **kwargs) -> PreTrainedTokenizerFast:
    """A word-level tokenizer built offline; ``template`` adds special tokens, e.g. ``"[BOS] $A [EOS]"``."""
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, VOCAB[s]) for s in specials]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", **kwargs)


def make_decoder(arch: str, pad: str, num_labels: int = 2) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A tiny random decoder classifier; ``pad``: "none" (no pad token), "eos" (pad == eos) or "distinct"."""
    pad_token = {"none": None, "eos": "[EOS]", "distinct": "[PAD]"}[pad]
    pad_id = None if pad_token is None else VOCAB[pad_token]
    tokenizer = make_tokenizer(
        "[BOS] $A [EOS]", ["[BOS]", "[EOS]"], bos_token="[BOS]", eos_token="[EOS]", pad_token=pad_token
    )
    torch.manual_seed(0)
    common = {"vocab_size": 100, "num_labels": num_labels, "pad_token_id": pad_id, "eos_token_id": EOS}
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            bos_token_id=BOS,
            **common,
        )
        model = LlamaForSequenceClassification(config)
    else:
        config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=BOS, **common)
        model = GPT2ForSequenceClassification(config)
    return model.eval(), tokenizer


def make_bert(num_labels: int = 2, **config_kwargs) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    tokenizer = make_tokenizer(
        "[CLS] $A [SEP]",
        ["[CLS]", "[SEP]"],
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        num_labels=num_labels,
        pad_token_id=PAD,
        **config_kwargs,
    )
    return BertForSequenceClassification(config).eval(), tokenizer


def independent_logits(model: PreTrainedModel, tokenizer, text: str) -> torch.Tensor:
    """The model's logits for ``text`` alone, unpadded, read off the true last token (decoders) or [CLS]."""
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        if isinstance(model, BertForSequenceClassification):
            return model(input_ids=ids).logits[0]
        # Bypass the model's own pooling, which looks for config.pad_token_id, and read the last position.
        hidden = model.base_model(input_ids=ids).last_hidden_state
        return model.score(hidden)[0, -1]


MODELS = [
    pytest.param(functools.partial(make_decoder, arch, pad), id=f"{arch}-pad-{pad}")
    for arch in ("llama", "gpt2")
    for pad in ("none", "eos", "distinct")
] + [pytest.param(make_bert, id="bert")]


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("make", MODELS)
def test_classifier_score_is_independent_of_batch_and_padding(make, padding_side):
    model, tokenizer = make()
    tokenizer.padding_side = padding_side
    expected = [independent_logits(model, tokenizer, text)[1].item() for text in TEXTS]
    prompts = [""] * len(TEXTS)
    for batch_size in (1, 2, 32):
        reward = SequenceClassifierReward(model, tokenizer, batch_size=batch_size)
        alone = [reward([""], [text])[0] for text in TEXTS]
        batched = reward(prompts, TEXTS)
        np.testing.assert_allclose(alone, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-5)


def test_native_pooling_is_wrong_when_pad_is_eos():
    """Guards the test above: the model's own pooling, with the tokenizer padding, does misread these."""
    model, tokenizer = make_decoder("llama", "eos")
    tokenizer.padding_side = "left"
    expected = torch.stack([independent_logits(model, tokenizer, text) for text in TEXTS])
    with torch.no_grad():
        native = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    assert not torch.allclose(native, expected, atol=1e-3)


def test_classifier_leaves_model_and_tokenizer_as_found():
    model, tokenizer = make_decoder("llama", "eos")
    model.train()
    reward = SequenceClassifierReward(model, tokenizer)
    reward(["", ""], ["the cat the cat [EOS]", "dog"])
    assert model.training
    assert model.config.pad_token_id == EOS
    assert tokenizer.pad_token == "[EOS]"

    model, tokenizer = make_decoder("gpt2", "none")
    SequenceClassifierReward(model, tokenizer)(["", ""], ["cat", "dog dog"])
    assert model.config.pad_token_id is None and tokenizer.pad_token is None


def test_classifier_prompt_plus_completion_and_kwargs_ignored():
    model, tokenizer = make_decoder("llama", "distinct")
    reward = SequenceClassifierReward(model, tokenizer, text="prompt+completion")
    scores = reward(["the cat ", "a "], ["sat", "dog ran"], target=["x", "y"], step=3)
    expected = [independent_logits(model, tokenizer, t)[1].item() for t in ["the cat sat", "a dog ran"]]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_classifier_probabilities_and_label_names():
    model, tokenizer = make_bert(num_labels=3, id2label={0: "NEG", 1: "NEU", 2: "POS"})
    logits = torch.stack([independent_logits(model, tokenizer, t) for t in TEXTS]).double()
    for score, transform in [
        ("logit", lambda x: x),
        ("probability", lambda x: torch.softmax(x, -1)),
        ("log_probability", lambda x: torch.log_softmax(x, -1)),
    ]:
        reward = SequenceClassifierReward(model, tokenizer, label="POS", score=score)
        np.testing.assert_allclose(reward([""] * 4, TEXTS), transform(logits)[:, 2], rtol=1e-5, atol=1e-6)
    by_index = SequenceClassifierReward(model, tokenizer, label=0, score="probability")
    np.testing.assert_allclose(by_index([""] * 4, TEXTS), torch.softmax(logits, -1)[:, 0], atol=1e-6)
    assert "POS" in repr(SequenceClassifierReward(model, tokenizer, label=2))


def test_classifier_label_errors():
    model, tokenizer = make_bert(num_labels=3, id2label={0: "NEG", 1: "NEU", 2: "POS"})
    with pytest.raises(ValueError, match=r"3 labels.*'NEG'.*'NEU'.*'POS'"):
        SequenceClassifierReward(model, tokenizer)
    with pytest.raises(ValueError, match=r"unknown label 'positive'.*'POS'"):
        SequenceClassifierReward(model, tokenizer, label="positive")
    with pytest.raises(ValueError, match="out of range"):
        SequenceClassifierReward(model, tokenizer, label=3)
    with pytest.raises(ValueError, match="out of range"):
        SequenceClassifierReward(model, tokenizer, label=-1)


def test_classifier_default_labels():
    binary, tokenizer = make_bert(num_labels=2)
    assert SequenceClassifierReward(binary, tokenizer).label == 1
    scalar, tokenizer = make_decoder("llama", "eos", num_labels=1)
    reward = SequenceClassifierReward(scalar, tokenizer)
    assert reward.label == 0
    expected = [independent_logits(scalar, tokenizer, t)[0].item() for t in TEXTS]
    np.testing.assert_allclose(reward([""] * 4, TEXTS), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="scalar"):
        SequenceClassifierReward(scalar, tokenizer, score="probability")


def test_classifier_truncates_to_max_length():
    model, tokenizer = make_bert()
    reward = SequenceClassifierReward(model, tokenizer, max_length=5)
    long, prefix = "the cat sat on the mat", "the cat sat"  # [CLS] + 3 words + [SEP] = 5 tokens
    assert reward([""], [long]) == pytest.approx(reward([""], [prefix]), abs=1e-6)


def test_classifier_loads_local_folder(tmp_path: Path):
    model, tokenizer = make_decoder("llama", "eos")
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    from_folder = SequenceClassifierReward(tmp_path / "rm", device="cpu")
    in_memory = SequenceClassifierReward(model, tokenizer)
    np.testing.assert_allclose(from_folder([""] * 4, TEXTS), in_memory([""] * 4, TEXTS), rtol=1e-5, atol=1e-6)
    assert not from_folder.model.training

    missing = tmp_path / "no_such_model"
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        SequenceClassifierReward(str(missing))


def test_classifier_inside_the_reward_machinery():
    model, tokenizer = make_bert()
    classifier = SequenceClassifierReward(model, tokenizer)
    assert reward_name(classifier) == "SequenceClassifierReward"
    ws = WeightedSum({classifier: 2.0, length_reward: 0.1})
    scores = score_completions(ws, [""] * 4, TEXTS, target=["a"] * 4)
    expected = [2 * independent_logits(model, tokenizer, t)[1].item() + 0.1 * len(t) for t in TEXTS]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert str(ws) == f"WeightedSum(2.0*SequenceClassifierReward + 0.1*{__name__}.length_reward)"
