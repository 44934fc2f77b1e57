"""Speed of ``textgym.evaluate``, as ratios against ``model.generate`` on the same prompts, in this process.

Two evaluations of ``--episodes`` held-out episodes, ``num_envs=8`` at a time:

- ``evaluate(reference)``: the zero-shot model, which is its own KL reference (no reference pass);
  yardstick: ``generate`` alone.
- ``evaluate(policy)``: a copy of the model standing for a trained policy (a second model object, so the
  reference pass is needed); yardstick: ``generate`` plus one teacher-forced reference pass over the
  generated sequences, what TRL pays.

``generate`` samples at temperature 1 (no top-k, no top-p) up to the env's generation budget, stopping
rows at EOS as the env does. Issue 12's target: both ratios at most 1.15.

Usage: ``python bench/evaluate.py [--env textgym/Sentiment-v0] [--model smollm2] [--episodes 16]
[--repeats 5]``; ``--quick`` runs Copy-v1 on its tiny model.
"""

from __future__ import annotations

import argparse
import copy
import time

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode
from transformers import GenerationConfig

import textgym
from textgym.models import ModelBundle, load_model
from textgym.models.cached_lm import token_logprobs

NUM_ENVS = 8


def held_out_prompts(
    env_id: str, bundle: ModelBundle, episodes: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The left-padded prompt batches ``evaluate`` starts from with this seed, ``NUM_ENVS`` at a time."""
    envs = gym.make_vec(
        env_id,
        num_envs=NUM_ENVS,
        vectorization_mode="vector_entry_point",
        split="test",
        autoreset_mode=AutoresetMode.DISABLED,
        model=bundle,
        kl_coef=0.0,
        device=str(bundle.device),
    )
    P = envs.unwrapped.prompt_budget
    batches = []
    for b in range(episodes // NUM_ENVS):
        obs, _ = envs.reset(seed=seed + b * NUM_ENVS)
        width = int(obs["attention_mask"][:, :P].sum(-1).max())
        batches.append((obs["input_ids"][:, P - width : P], obs["attention_mask"][:, P - width : P]))
    return batches


@torch.no_grad()
def generate(bundle: ModelBundle, batches, budget: int, seed: int, with_ref: bool) -> None:
    torch.manual_seed(seed)
    config = GenerationConfig(
        do_sample=True,
        max_new_tokens=budget,
        top_k=0,
        top_p=1.0,
        pad_token_id=bundle.pad_token_id,
        eos_token_id=list(bundle.eos_token_ids),
    )
    for ids, mask in batches:
        sequences = bundle.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        if with_ref:
            full = torch.cat([mask, (sequences[:, ids.shape[1] :] != bundle.pad_token_id).long()], 1)
            token_logprobs(
                bundle.model, sequences, full, last=sequences.shape[1] - ids.shape[1], share_prefixes=False
            )  # as TRL


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA runs asynchronously: count the queued work too
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="textgym/Sentiment-v0")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="Copy-v1 on its tiny model")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.quick:
        args.env, args.model = "textgym/Copy-v1", None
    env = gym.make(args.env).unwrapped
    bundle = env.model if args.model is None else load_model(args.model, device=args.device)
    bundle.model.to(args.device)  # the tiny model is built on the CPU
    device = str(bundle.device)
    policy = copy.deepcopy(bundle.model)  # another object: evaluate must run the reference for it
    budget = env.generation_budget
    batches = held_out_prompts(args.env, bundle, args.episodes, seed=0)
    variants = {
        "evaluate(reference)": lambda s: textgym.evaluate(
            "reference", args.env, args.episodes, seed=s, model=bundle, device=device
        ),
        "generate": lambda s: generate(bundle, batches, budget, s, with_ref=False),
        "evaluate(policy)": lambda s: textgym.evaluate(
            policy, args.env, args.episodes, seed=s, model=bundle, device=device
        ),
        "generate+ref": lambda s: generate(bundle, batches, budget, s, with_ref=True),
    }
    for fn in variants.values():  # warm-up
        fn(0)
    times: dict[str, list[float]] = {key: [] for key in variants}
    for repeat in range(args.repeats):  # interleaved: drifts in machine speed hit every variant alike
        for key, fn in variants.items():
            times[key].append(timed(lambda fn=fn, repeat=repeat: fn(repeat)))
    best = {key: min(values) for key, values in times.items()}
    print(f"{args.env}, {args.model or 'tiny'}: {args.episodes} episodes, best of {args.repeats}, {device}")
    print(f"  evaluate(reference) / generate:     {best['evaluate(reference)'] / best['generate']:.3f}x")
    print(f"  evaluate(policy) / generate+ref:    {best['evaluate(policy)'] / best['generate+ref']:.3f}x")
    print("  seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in best.items()))


if __name__ == "__main__":
    main()
