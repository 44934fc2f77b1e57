"""A causal language model travelling together with its tokenizer."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import transformers


@dataclass(eq=False)
class ModelBundle:
    """A causal LM, its tokenizer and the name it was loaded under.

    Bundles handed out by :func:`textgym.models.load_model` and :func:`textgym.models.tiny_model` are
    memoised and shared between every policy and environment that names the same model, so they come
    frozen (eval mode, no parameter requires grad). Anything that wants to train calls
    :meth:`trainable_copy` and leaves the shared one untouched as the reference model.

    Equality is identity (``eq=False``): two bundles are "the same model" only if they are the same object,
    which is what the memoisation guarantees.

    Attributes:
        model: The causal language model.
        tokenizer: The tokenizer that goes with ``model``.
        name: The resolved name or path the model was loaded from.
    """

    # repr=False: the default dataclass repr would print every module of the network.
    model: transformers.PreTrainedModel = field(repr=False)
    tokenizer: transformers.PreTrainedTokenizerBase = field(repr=False)
    name: str

    @property
    def vocab_size(self) -> int:
        """The size of the model's logits dimension.

        This can differ from ``len(tokenizer)``: checkpoints often pad the embedding matrix to a multiple
        of 64 or 128, and action spaces must cover every index the model can score.
        """
        output_embeddings = self.model.get_output_embeddings()
        if output_embeddings is not None and getattr(output_embeddings, "weight", None) is not None:
            return int(output_embeddings.weight.shape[0])
        return int(self.model.config.get_text_config().vocab_size)

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Every token id that ends a generation, sorted.

        Chat models often stop on more ids than the tokenizer's single ``eos_token_id`` (SmolLM2 stops on
        ``<|im_end|>``), and ``generation_config.eos_token_id`` lists them, so both sources are merged.
        """
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        generation_config = getattr(self.model, "generation_config", None)
        generation_eos = getattr(generation_config, "eos_token_id", None)
        if isinstance(generation_eos, int):
            ids.add(generation_eos)
        elif generation_eos is not None:
            ids.update(int(token_id) for token_id in generation_eos if token_id is not None)
        return tuple(sorted(ids))

    @property
    def pad_token_id(self) -> int:
        """The id to pad batches with: the tokenizer's pad id, else the first EOS id, else 0.

        The tokenizer is never mutated, because it is shared by every user of the bundle. Padded
        positions are masked out by ``attention_mask``, so which id fills them does not change results.
        """
        if self.tokenizer.pad_token_id is not None:
            return int(self.tokenizer.pad_token_id)
        eos_ids = self.eos_token_ids
        return eos_ids[0] if eos_ids else 0

    @property
    def device(self) -> torch.device:
        """The device holding the model's parameters."""
        return self.model.device

    def trainable_copy(self) -> ModelBundle:
        """Return a bundle with a deep copy of the model, in train mode and with every parameter trainable.

        The tokenizer is shared rather than copied: it is stateless as far as training is concerned.
        Weight tying (e.g. ``lm_head`` tied to the input embeddings) is preserved by the deep copy.
        """
        model = copy.deepcopy(self.model)
        model.requires_grad_(True)
        model.train()
        return ModelBundle(model=model, tokenizer=self.tokenizer, name=self.name)
