"""A causal LM stepped one token at a time over a batch of rows, with a KV cache.

The environment uses it for the frozen reference model and agents use it for the policy, so that
``T`` generated tokens cost ``T`` single-token forwards instead of ``T`` forwards over the whole prefix.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counted over the unmasked tokens of its row, as HF ``generate`` does."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def shared_rows(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rows that repeat an earlier row, as RLOO and GRPO's groups of completions per prompt do.

    Returns ``(first, inverse)``: the indices of the distinct rows of ``(ids, mask)`` and, for each row, the
    position of its copy among them (``rows == distinct[inverse]``); None when every row is distinct.
    """
    key = torch.cat([ids, mask.to(ids.dtype)], dim=1)
    distinct, inverse = torch.unique(key, dim=0, return_inverse=True)
    if len(distinct) == len(key):
        return None
    first = torch.full((len(distinct),), len(key), dtype=torch.long, device=ids.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(key), device=ids.device), reduce="amin")
    return first, inverse


def expand_cache(cache: DynamicCache, inverse: torch.Tensor) -> bool:
    """Repeat the cache's rows as ``inverse`` says, in place; False (untouched) for layouts other than
    plain per-layer key/value tensors."""
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return False
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[inverse], layer.values[inverse]
    return True


def shared_prefix_outputs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    prefix: int,
    hidden_states: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Teacher-forced outputs at columns ``prefix - 1 .. S - 2`` (those predicting the last ``S - prefix``
    tokens), running each distinct prefix of ``(B, S)`` rows once.

    Rows whose first ``prefix`` columns repeat another's (a group of completions of one prompt) take a copy
    of that prefix's KV cache and run only their own columns. The copy is an indexing op, so with
    gradients the backward pass sums the rows' gradients into the prefix's activations: the same outputs
    and gradients as one pass over every row, up to float rounding.

    Returns:
        ``(B, S - prefix, V)`` logits and, with ``hidden_states``, the last layer's ``(B, S - prefix, H)``;
        None when no two rows share a prefix or the cache's layout cannot be copied (then run the plain
        pass).
    """
    shared = shared_rows(input_ids[:, :prefix], attention_mask[:, :prefix])
    if shared is None:
        return None
    first, inverse = shared
    cache = DynamicCache()
    head = model(  # (U, 1, V) at each distinct prefix's last column
        input_ids=input_ids[first, :prefix],
        attention_mask=attention_mask[first, :prefix],
        position_ids=positions[first, :prefix],
        past_key_values=cache,
        use_cache=True,
        output_hidden_states=hidden_states,
        logits_to_keep=1,
    )
    if not expand_cache(cache, inverse):
        return None
    tail = model(  # (B, S - prefix, V), attending to the copied cache; its last column predicts nothing
        input_ids=input_ids[:, prefix:],
        attention_mask=attention_mask,
        position_ids=positions[:, prefix:],
        past_key_values=cache,
        use_cache=True,
        output_hidden_states=hidden_states,
    )
    logits = torch.cat([head.logits[inverse], tail.logits[:, :-1]], dim=1)
    if not hidden_states:
        return logits, None
    states = torch.cat([head.hidden_states[-1][inverse, -1:], tail.hidden_states[-1][:, :-1]], dim=1)
    return logits, states


class CachedLM:
    """Incremental decoding state for ``B`` rows of one causal LM.

    Every row's tokens are right-aligned in the cache (left padding), so one appended column steps every
    row at once. A row that sits a step out appends a masked column. Rows can be refilled with a new
    prompt while the others keep their cache, which is what autoreset in a vector env needs.

    Attributes:
        next_logits: ``(B, V)`` logits for each row's next token, in the model's dtype.
        next_hidden: ``(B, H)`` the last layer's hidden state there, with ``hidden_states=True`` (a value
            head reads it); else None.
    """

    def __init__(self, model: PreTrainedModel, pad_token_id: int, hidden_states: bool = False) -> None:
        self.model = model
        self.pad_token_id = int(pad_token_id)
        self.hidden_states = hidden_states
        self.cache: DynamicCache | None = None
        self.ids: torch.Tensor | None = None  # (B, C) token ids in cache order, kept for rebuilds
        self.mask: torch.Tensor | None = None  # (B, C) 1 where the column holds a real token of the row
        self.next_logits: torch.Tensor | None = None  # (B, V)
        self.next_hidden: torch.Tensor | None = None  # (B, H)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            output_hidden_states=self.hidden_states,
            logits_to_keep=1,
        )
        hidden = out.hidden_states[-1][:, -1, :] if self.hidden_states else None
        return out.logits[:, -1, :], hidden

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor | None = None
    ) -> None:
        """Run left-padded prompts through the model.

        Args:
            input_ids: ``(R, W)`` left-padded prompt tokens (each row's last column is a real token).
            attention_mask: ``(R, W)`` 1 on real tokens.
            rows: ``(R,)`` indices of the rows to refill; ``None`` replaces the whole batch with ``R`` rows.
        """
        if not bool(attention_mask[:, -1].all()):
            raise ValueError(
                "prefill expects left-padded prompts: every row's last column must be a real token"
            )
        cache, logits, hidden = self._prefill_forward(input_ids, attention_mask)
        if rows is None or self.cache is None:
            self.cache, self.ids, self.mask = cache, input_ids, attention_mask
            self.next_logits, self.next_hidden = logits, hidden
            return
        if not self._splice(cache, rows):
            # Cache layouts other than plain per-layer key/value tensors (sliding windows, hybrid models)
            # are rebuilt from the tokens: correct for every model, at the price of one full prefill.
            ids, mask = self._pad_left(self.ids, self.mask, input_ids, attention_mask, rows)
            self.prefill(ids, mask)
            return
        self.ids, self.mask = self._pad_left(self.ids, self.mask, input_ids, attention_mask, rows)
        self.next_logits = self.next_logits.clone()
        self.next_logits[rows] = logits
        if hidden is not None:
            self.next_hidden = self.next_hidden.clone()
            self.next_hidden[rows] = hidden
        self._trim()

    def _prefill_forward(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor | None]:
        """A new cache over left-padded prompts, with each distinct prompt run once: a group of G
        completions of one prompt (RLOO, GRPO) pays one prefill, whose cache is copied to its rows."""
        shared = shared_rows(ids, mask)
        if shared is not None:
            first, inverse = shared
            cache = DynamicCache()
            distinct_ids, distinct_mask = ids[first], mask[first]
            logits, hidden = self._forward(
                distinct_ids, distinct_mask, position_ids_from_mask(distinct_mask), cache
            )
            if expand_cache(cache, inverse):
                return cache, logits[inverse], None if hidden is None else hidden[inverse]
        cache = DynamicCache()
        return cache, *self._forward(ids, mask, position_ids_from_mask(mask), cache)

    def _pad_left(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        new_ids: torch.Tensor,
        new_mask: torch.Tensor,
        rows: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(ids.shape[1], new_ids.shape[1])
        ids = _left_pad(ids, width, self.pad_token_id).clone()
        mask = _left_pad(mask, width, 0).clone()
        ids[rows] = _left_pad(new_ids, width, self.pad_token_id)
        mask[rows] = _left_pad(new_mask, width, 0)
        return ids, mask

    def _splice(self, new: DynamicCache, rows: torch.Tensor) -> bool:
        if not all(type(layer) is DynamicLayer for layer in [*self.cache.layers, *new.layers]):
            return False
        for old_layer, new_layer in zip(self.cache.layers, new.layers, strict=True):
            width = max(old_layer.keys.shape[-2], new_layer.keys.shape[-2])
            for name in ("keys", "values"):
                merged = _left_pad(getattr(old_layer, name), width, 0.0, dim=-2).clone()
                merged[rows] = _left_pad(getattr(new_layer, name), width, 0.0, dim=-2)
                setattr(old_layer, name, merged)
        return True

    def step(self, tokens: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Append one token to every row; rows where ``active`` is False get a masked pad column.

        Rows that sit the step out keep their ``next_logits`` (and ``next_hidden``).

        Args:
            tokens: ``(B,)`` int64 token ids.
            active: ``(B,)`` bool; ``None`` means all rows.
        """
        if active is None:
            column = torch.ones_like(tokens)
        else:
            column = active.long()
            tokens = torch.where(active, tokens, self.pad_token_id)
        positions = self.mask.sum(-1, keepdim=True)  # (B, 1): the next position of each row
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        self.mask = torch.cat([self.mask, column[:, None]], dim=1)
        logits, hidden = self._forward(tokens[:, None], self.mask, positions, self.cache)
        if active is not None:  # a masked column's outputs are not the row's next-token outputs
            logits = torch.where(active[:, None], logits, self.next_logits)
            if hidden is not None:
                hidden = torch.where(active[:, None], hidden, self.next_hidden)
        self.next_logits, self.next_hidden = logits, hidden
        # No trim here: leading columns only fall dead when rows are refilled, and prefill trims.

    def _trim(self) -> None:
        """Drop leading columns that no row attends to, so the cache never outgrows the live tokens."""
        if not all(type(layer) is DynamicLayer for layer in self.cache.layers):
            return  # other cache layouts keep their columns: correct, only less compact
        live = self.mask.any(dim=0).nonzero()
        first = int(live[0]) if len(live) else self.mask.shape[1]
        if first == 0:
            return
        self.ids, self.mask = self.ids[:, first:], self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]


def _left_pad(x: torch.Tensor, width: int, value: float, dim: int = 1) -> torch.Tensor:
    missing = width - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_full(shape, value), x], dim=dim)


@torch.no_grad()
def token_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float = 1.0,
    last: int | None = None,
    share_prefixes: bool = True,
) -> torch.Tensor:
    """Teacher-forced log-probability of every token given the tokens before it.

    Args:
        model: a causal LM.
        input_ids: ``(B, S)`` left- or right-padded sequences.
        attention_mask: ``(B, S)`` 1 on real tokens.
        temperature: logits are divided by it, as when sampling.
        last: only the log-probs of the last ``last`` tokens (a completion's). The LM head then runs only
            there (``logits_to_keep``): on a 49k vocabulary, at a prompt's positions it would cost a sixth
            of the pass and a ``(B, S, V)`` log-softmax for nothing.
        share_prefixes: with ``last``, rows whose first ``S - last`` columns repeat another's (a group of
            completions of one prompt) run those columns once and continue from a copy of its KV cache;
            the same log-probs up to float rounding. False: one pass over every row, as TRL does.

    Returns:
        ``(B, S - 1)`` float32 (``(B, last)`` with ``last``): entry ``[b, s]`` is
        ``log p(input_ids[b, s + 1] | input_ids[b, : s + 1])``.
    """
    positions = position_ids_from_mask(attention_mask)
    if share_prefixes and last:
        prefix = input_ids.shape[1] - last
        shared = shared_prefix_outputs(model, input_ids, attention_mask, positions, prefix)
        if shared is not None:
            logprobs = torch.log_softmax(shared[0].float() / temperature, dim=-1)  # (B, last, V)
            return logprobs.gather(-1, input_ids[:, prefix:, None]).squeeze(-1)
    keep = 0 if last is None else last + 1  # 0: every position
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        logits_to_keep=keep,
    ).logits[:, :-1]
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logprobs.gather(-1, input_ids[:, input_ids.shape[1] - logits.shape[1] :, None]).squeeze(-1)
