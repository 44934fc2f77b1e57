"""Shared prompt prefixes: a group of completions of one prompt (RLOO, GRPO) runs the prompt once.

Both the rollout's prefill (``CachedLM``) and the reference's teacher-forced pass (``token_logprobs``)
must give every row what a pass over that row alone gives.
"""

from __future__ import annotations

import contextlib

import torch

from textgym.models import tiny_model
from textgym.models.cached_lm import CachedLM, position_ids_from_mask, shared_rows, token_logprobs

WORDS = "one two three four five six seven eight nine ten eleven twelve"


def batch_with_groups():
    """Left-padded prompts ``(5, 6)`` in groups (rows 0-1 and 2-3 share one), right-padded completions."""
    bundle = tiny_model([WORDS], seed=5)
    g = torch.Generator().manual_seed(0)
    lengths = [6, 3, 4]  # three distinct prompts of different lengths
    distinct = [torch.randint(4, 16, (n,), generator=g) for n in lengths]
    rows = [0, 0, 1, 1, 2]  # which distinct prompt each row holds
    prompt_ids = torch.zeros(5, 6, dtype=torch.long)
    prompt_mask = torch.zeros(5, 6, dtype=torch.long)
    for r, p in enumerate(rows):
        prompt_ids[r, 6 - lengths[p] :] = distinct[p]
        prompt_mask[r, 6 - lengths[p] :] = 1
    tokens = torch.randint(4, 16, (5, 4), generator=g)
    completion_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    tokens = torch.where(completion_mask.bool(), tokens, 0)
    return bundle.model, prompt_ids, prompt_mask, tokens, completion_mask


@contextlib.contextmanager
def batch_sizes_seen(model):
    """Record the batch size of every forward call of ``model`` (a memoised model: the hook goes after)."""
    seen: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        yield seen
    finally:
        handle.remove()


def test_shared_rows_finds_the_groups():
    _, ids, mask, _, _ = batch_with_groups()
    first, inverse = shared_rows(ids, mask)
    assert torch.equal(ids[first][inverse], ids) and torch.equal(mask[first][inverse], mask)
    assert len(first) == 3
    assert shared_rows(ids[[0, 2, 4]], mask[[0, 2, 4]]) is None


def test_token_logprobs_with_shared_prefixes_equal_one_pass_over_every_row():
    model, prompt_ids, prompt_mask, tokens, completion_mask = batch_with_groups()
    ids, mask = torch.cat([prompt_ids, tokens], 1), torch.cat([prompt_mask, completion_mask], 1)
    plain = token_logprobs(model, ids, mask, last=4, share_prefixes=False)
    with batch_sizes_seen(model) as seen:
        shared = token_logprobs(model, ids, mask, last=4)
    assert seen == [3, 5]  # the three distinct prompts once, then the five completions on their copies
    real = completion_mask.bool()
    torch.testing.assert_close(shared[real], plain[real], atol=1e-5, rtol=0)
    # and each row against a pass over that row alone, without padding
    for r in range(5):
        row = ids[r][mask[r].bool()][None]
        alone = token_logprobs(model, row, torch.ones_like(row), share_prefixes=False)[
            0, -int(real[r].sum()) :
        ]
        torch.testing.assert_close(shared[r][real[r]], alone, atol=1e-5, rtol=0)


def test_cached_prefill_of_a_group_runs_its_prompt_once_and_steps_as_a_full_pass():
    model, prompt_ids, prompt_mask, tokens, _ = batch_with_groups()
    lm = CachedLM(model, pad_token_id=0)
    with batch_sizes_seen(model) as seen:
        lm.prefill(prompt_ids, prompt_mask)
    assert seen == [3]
    for t in range(tokens.shape[1]):
        ids = torch.cat([prompt_ids, tokens[:, :t]], 1)
        mask = torch.ones_like(ids)
        mask[:, :6] = prompt_mask
        full = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits[
            :, -1
        ]
        torch.testing.assert_close(lm.next_logits, full, atol=1e-5, rtol=0)
        lm.step(tokens[:, t])  # the rows of a group now diverge in the shared cache's copies


def test_the_policy_pass_over_a_group_gives_each_row_its_own_pass_and_the_same_gradient():
    """The teacher-forced pass with gradients (the agents' update) shares a group's prompt too."""
    from textgym.agents.policy import LMPolicy

    model, prompt_ids, prompt_mask, tokens, completion_mask = batch_with_groups()
    policy = LMPolicy(tiny_model([WORDS], seed=5), value_head=True)
    policy.value_head.weight.data.normal_(generator=torch.Generator().manual_seed(1))

    def loss_and_grads(out, mask):
        policy.zero_grad()
        loss = ((out.logprobs + out.values + out.entropy) * mask).sum()
        loss.backward()
        return [p.grad.clone() for p in policy.parameters()]

    with batch_sizes_seen(policy.lm) as seen:
        shared = policy(prompt_ids, prompt_mask, tokens, completion_mask)
    assert seen == [3, 5]
    shared_grads = loss_and_grads(shared, completion_mask)
    rows = [policy(prompt_ids[[r]], prompt_mask[[r]], tokens[[r]], completion_mask[[r]]) for r in range(5)]
    real = completion_mask.bool()
    for name in ("logprobs", "entropy", "values"):
        alone = torch.cat([getattr(out, name) for out in rows])
        torch.testing.assert_close(getattr(shared, name)[real], alone[real], atol=1e-5, rtol=0)
    separate = [loss_and_grads(out, completion_mask[[r]]) for r, out in enumerate(rows)]  # they add up
    for g, *parts in zip(shared_grads, *separate, strict=True):
        torch.testing.assert_close(g, sum(parts), atol=1e-4, rtol=1e-4)
