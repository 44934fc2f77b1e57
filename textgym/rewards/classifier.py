"""A reward read off a local Hugging Face sequence-classification model, e.g. a sentiment classifier."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

__all__ = ["REWARD_MODEL_FILE", "SequenceClassifierReward"]

REWARD_MODEL_FILE = "reward_model.json"
"""Beside a trained reward model: its normalisation (mean, std), text format and training report."""

Score = Literal["logit", "probability", "log_probability"]
TextField = Literal["completion", "prompt+completion"]


class SequenceClassifierReward:
    """Scores text with one class of a sequence-classification model; a reward in TRL's convention.

    The score of a text does not depend on the batch it is scored in nor on the tokenizer's padding side:
    texts are always padded on the right by this class, and decoder classifiers (Llama, GPT-2...), which pool
    at the last token that is not ``config.pad_token_id``, are given a padding id that occurs nowhere in the
    batch's real tokens. So a model whose pad token is its EOS token, or that has no pad token at all, still
    reads the true last token. Neither the tokenizer nor the model is modified, though ``pad_token_id`` is
    swapped on the model config for the duration of a forward pass, so do not share the model across threads.

    Example:
        >>> reward = SequenceClassifierReward("/models/sentiment", label="POSITIVE", score="probability")
        >>> reward(["Review: "], ["a lovely film"])  # doctest: +SKIP
        [0.97]
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | PreTrainedModel,
        tokenizer: str | os.PathLike[str] | PreTrainedTokenizerBase | None = None,
        *,
        label: int | str | None = None,
        score: Score = "logit",
        device: str | torch.device | None = None,
        batch_size: int = 32,
        max_length: int | None = 512,
        text: TextField | None = None,
        normalize: bool | None = None,
    ) -> None:
        """Load or wrap the model.

        Args:
            model: A loaded model, or the path of a local folder holding one (never fetched from the Hub).
            tokenizer: A tokenizer, or the path of a local folder holding one. Defaults to the model's folder.
            label: The class whose score is the reward, by index or by name (a key of ``config.label2id``).
                Defaults to 0 for a scalar head (``num_labels == 1``, a reward model) and to 1 for a binary
                classifier; required when there are more than two labels.
            score: ``"logit"`` (the raw head output), ``"probability"`` (softmax over the labels) or
                ``"log_probability"`` (log-softmax). A scalar head only supports ``"logit"``.
            device: Where to run the model; the model is moved there. By default a model given as an object
                stays where it is, and one loaded from a folder goes to CUDA when available.
            batch_size: How many texts go through the model at once.
            max_length: Texts are truncated to this many tokens, on the tokenizer's ``truncation_side`` (set
                it to ``"left"`` to keep the end of long texts); None disables truncation.
            text: What is scored: the completion alone or the prompt followed by the completion. Default:
                what a trained reward model's ``reward_model.json`` says, else ``"completion"``.
            normalize: Return ``(score - mean) / std`` with the mean and std in the model folder's
                ``reward_model.json`` (written by :func:`textgym.preferences.train_reward_model`). Default:
                when that file is there.

        Raises:
            FileNotFoundError: if a model or tokenizer path is not an existing local folder.
            ValueError: for an unknown or missing label, a score a scalar head cannot give, or a bad option.
            TypeError: if ``model`` or ``tokenizer`` is of an unsupported type.
        """
        if score not in ("logit", "probability", "log_probability"):
            raise ValueError(f"score must be 'logit', 'probability' or 'log_probability', got {score!r}")
        if text not in (None, "completion", "prompt+completion"):
            raise ValueError(f"text must be 'completion' or 'prompt+completion', got {text!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be at least 1 or None, got {max_length}")

        meta: dict[str, Any] = {}
        if isinstance(model, str | os.PathLike):
            folder = _local_folder(model, "model")
            if (folder / REWARD_MODEL_FILE).is_file():
                meta = json.loads((folder / REWARD_MODEL_FILE).read_text())
            self.model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True
            )
            self.model.eval()
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            tokenizer = folder if tokenizer is None else tokenizer
        elif isinstance(model, PreTrainedModel):
            self.model = model
        else:
            raise TypeError(
                f"model must be a PreTrainedModel or a local folder path, got {type(model).__qualname__}"
            )
        if device is not None:
            self.model.to(device)
        self.tokenizer = _load_tokenizer(tokenizer, self.model)

        num_labels = self.model.config.num_labels
        if num_labels == 1 and score != "logit":
            raise ValueError(
                f"the model has a single output (a scalar reward head), so score must be 'logit', "
                f"not {score!r}"
            )
        self.label = _label_index(self.model.config, label)
        self.score: Score = score
        self.text: TextField = text or meta.get("text", "completion")
        self.normalization: tuple[float, float] | None = None
        if normalize and not meta:
            raise ValueError(
                f"normalize=True needs a trained reward model's {REWARD_MODEL_FILE} beside the model; "
                f"{getattr(self.model, 'name_or_path', 'this model')!r} has none"
            )
        if normalize is not False and meta:
            self.set_normalization(meta["mean"], meta["std"])
        self.batch_size = batch_size
        self.max_length = max_length
        # Only models whose forward takes segment ids (BERT-like) get them; decoders would reject them.
        self._takes_token_type_ids = "token_type_ids" in inspect.signature(self.model.forward).parameters

    def __repr__(self) -> str:
        label_name = self.model.config.id2label.get(self.label, str(self.label))
        return (
            f"SequenceClassifierReward(model={self.model.name_or_path!r}, "
            f"label={self.label} ({label_name!r}), score={self.score!r}, text={self.text!r})"
        )

    def __call__(self, prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
        """Score each completion (or prompt + completion); extra keyword columns are ignored.

        Returns:
            One float per completion, in order (normalised when the reward carries a mean and std).

        Raises:
            ValueError: if a text tokenizes to no tokens at all.
        """
        with torch.inference_mode(), _eval_mode(self.model):
            scores = self.rewards(prompts, completions).double()
        if self.normalization is not None:
            mean, std = self.normalization
            scores = (scores - mean) / std
        return scores.tolist()

    def rewards(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        """``(N,)`` float32 raw scores (not normalised) on the model's device, differentiable in the
        model's current mode: what training a reward model (:mod:`textgym.preferences`) backpropagates."""
        if self.text == "completion":
            texts = list(completions)
        else:
            texts = [prompt + completion for prompt, completion in zip(prompts, completions, strict=True)]
        if not texts:
            return torch.zeros(0, device=self.model.device)
        encoded = self.tokenizer(
            texts, truncation=self.max_length is not None, max_length=self.max_length, padding=False
        )
        ids: list[list[int]] = encoded["input_ids"]
        type_ids: list[list[int]] | None = None
        if self._takes_token_type_ids:
            type_ids = encoded.get("token_type_ids")
        for index, row in enumerate(ids):
            if not row:
                raise ValueError(
                    f"text {index} ({texts[index][:80]!r}) tokenizes to no tokens; nothing to score"
                )

        # Batching texts of similar length together wastes less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        chunks = []
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            logits = self._forward(
                [ids[i] for i in chunk], None if type_ids is None else [type_ids[i] for i in chunk]
            )
            chunks.append(self._select(logits))
        scores = torch.cat(chunks)
        return scores[torch.as_tensor(order, device=scores.device).argsort()]

    def set_normalization(self, mean: float, std: float) -> None:
        """Return ``(score - mean) / std`` from now on (what a trained reward model saves with itself)."""
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(
                f"normalisation needs a finite mean and a std > 0, got mean={mean!r}, std={std!r}"
            )
        self.normalization = (float(mean), float(std))

    def _forward(self, ids: list[list[int]], type_ids: list[list[int]] | None) -> torch.Tensor:
        """Pooled logits, shape ``(len(ids), num_labels)``, of right-padded token rows."""
        fill = self._padding_id(ids)
        width = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), width), fill, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        token_type_ids = torch.zeros((len(ids), width), dtype=torch.long)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[r, : len(row)] = 1
            if type_ids is not None:
                token_type_ids[r, : len(row)] = torch.tensor(type_ids[r], dtype=torch.long)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        device = self.model.device
        with _pad_token_id(self.model, fill):
            output = self.model(**{name: tensor.to(device) for name, tensor in inputs.items()})
        return output.logits

    def _padding_id(self, ids: list[list[int]]) -> int:
        """A token id to pad with that none of the real tokens uses, preferring the model's own pad id."""
        used = {token for row in ids for token in row}
        vocab_size = self.model.get_input_embeddings().num_embeddings
        preferred = (
            self.model.config.get_text_config().pad_token_id,
            self.tokenizer.pad_token_id,
            self.tokenizer.eos_token_id,
        )
        for candidate in itertools.chain(preferred, range(vocab_size)):
            if candidate is not None and 0 <= candidate < vocab_size and candidate not in used:
                return candidate
        raise ValueError("the batch uses every token id of the vocabulary, leaving none to pad with")

    def _select(self, logits: torch.Tensor) -> torch.Tensor:
        """The configured score of the chosen label, ``(B,)`` float32."""
        logits = logits.float()
        if self.score == "probability":
            logits = torch.softmax(logits, dim=-1)
        elif self.score == "log_probability":
            logits = torch.log_softmax(logits, dim=-1)
        return logits[:, self.label]


def _local_folder(path: str | os.PathLike[str], what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no local {what} folder at {os.fspath(path)!r}; SequenceClassifierReward only loads "
            f"local folders (it never downloads from the Hub)"
        )
    return folder


def _load_tokenizer(
    tokenizer: str | os.PathLike[str] | PreTrainedTokenizerBase | None, model: PreTrainedModel
) -> PreTrainedTokenizerBase:
    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    if tokenizer is None:
        if not (model.name_or_path and Path(model.name_or_path).is_dir()):
            raise ValueError(
                "no tokenizer given and the model was not loaded from a local folder to take one from; "
                "pass tokenizer="
            )
        tokenizer = model.name_or_path
    if isinstance(tokenizer, str | os.PathLike):
        return AutoTokenizer.from_pretrained(_local_folder(tokenizer, "tokenizer"), local_files_only=True)
    raise TypeError(
        f"tokenizer must be a PreTrainedTokenizerBase or a local folder path, "
        f"got {type(tokenizer).__qualname__}"
    )


def _label_index(config: Any, label: int | str | None) -> int:
    """The index of ``label`` among the model's classes, checking it exists."""
    num_labels = config.num_labels
    id2label = {int(i): name for i, name in (config.id2label or {}).items()}
    names = {name: i for i, name in id2label.items()}
    # Configs built with id2label alone may leave label2id unset; trust it when it is there.
    names.update(config.label2id or {})
    available = ", ".join(f"{i}={id2label.get(i, f'LABEL_{i}')!r}" for i in range(num_labels))
    if label is None:
        if num_labels > 2:
            raise ValueError(f"the model has {num_labels} labels; choose one with label= ({available})")
        # A scalar head has only index 0; for a binary classifier the positive class is conventionally 1.
        return num_labels - 1
    if isinstance(label, str):
        if label not in names:
            raise ValueError(f"unknown label {label!r}; the model's labels are {available}")
        return int(names[label])
    if isinstance(label, bool) or not isinstance(label, int):
        raise TypeError(f"label must be a class index or name, got {label!r}")
    if not 0 <= label < num_labels:
        raise ValueError(
            f"label index {label} is out of range for a model with {num_labels} labels ({available})"
        )
    return label


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate in eval mode (no dropout), handing the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _pad_token_id(model: PreTrainedModel, pad_token_id: int) -> Iterator[None]:
    """Temporarily tell the model which id pads, as last-token pooling reads it from the config."""
    # GPT-2 reads config.pad_token_id, newer models config.get_text_config().pad_token_id; set both.
    configs = {id(config): config for config in (model.config, model.config.get_text_config())}.values()
    saved = [(config, config.pad_token_id) for config in configs]
    for config, _ in saved:
        config.pad_token_id = pad_token_id
    try:
        yield
    finally:
        for config, old in saved:
            config.pad_token_id = old
