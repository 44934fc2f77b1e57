"""The agents' GPU paths in one command: bf16 checks, a short training run and the benchmarks, on CUDA.

Run ``python bench/gpu_check.py`` on a machine with a CUDA GPU (``pip install 'textgym[bench]'`` first).
It does, in order, and prints each result:

1. **bf16 against fp32**, for REINFORCE, PPO and PPO with LoRA on SmolLM2-135M-Instruct and
   Sentiment-v0 (:func:`check_bf16`): one iteration under bf16 autocast, whose sampler, reference and
   teacher-forced pass must all run their linear layers in bf16 (nothing silently in fp32), whose
   log-probs must match an fp32 pass over the same episodes (99th percentile and mean of the absolute
   differences within ``TOLERANCE`` and ``MEAN_TOLERANCE`` nats), and whose update
   must leave every weight finite. ``tests/test_precision.py`` runs the same function on the CPU (with
   ``bf16_cpu=True``) on a tiny model.
2. **A short training run**: ``textgym compare`` of REINFORCE and PPO on Sentiment-v0, 3 seeds at 16,384
   tokens each (the demo's GPU preset), into ``runs/gpu-check``.
3. **The benchmarks**: ``bench/rollout.py``, ``bench/evaluate.py`` and ``bench/train.py`` (with
   ``--memory``), each on the GPU.

``--only bf16`` (or ``train``, ``bench``) runs one part.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import textgym  # noqa: F401  (registers the envs)

HERE = Path(__file__).resolve().parent
# |log pi_bf16 - log pi_fp32| on the generated tokens: bf16 keeps 8 bits of mantissa, so each logit
# carries a relative error near 2^-9. Allowed: TOLERANCE on the 99th percentile, MEAN_TOLERANCE on the mean.
# Measured with the default model under CPU bf16 (4 Sentiment-v0 episodes): REINFORCE 0.118 and 0.034,
# PPO with LoRA 0.149 and 0.031.
TOLERANCE = 0.25
MEAN_TOLERANCE = 0.05


def check_bf16(cls: type, env_id: str, device: str, **config: Any) -> dict[str, Any]:
    """One iteration of an agent under bf16 autocast, held to an fp32 pass over the same episodes.

    Returns the largest, 99th-percentile and mean absolute log-prob differences, the dtypes the linear
    layers of the policy and of the env's reference produced while sampling and in the teacher-forced
    pass, whether every weight is finite after the update, and the update's gradient norm.
    """
    agent = cls(env_id, device=device, bf16=True, bf16_cpu=device == "cpu", seed=0, **config)
    seen: dict[str, set[torch.dtype]] = {"policy": set(), "reference": set()}
    hooks = []
    reference_model = agent.envs.ref_model.model  # under LoRA the same module, its adapter off
    for name, model in (("policy", agent.policy), ("reference", reference_model)):
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module is not agent.policy.value_head:
                hooks.append(module.register_forward_hook(lambda m, i, o, name=name: seen[name].add(o.dtype)))
    try:
        episodes = agent.collect(0)
        agent.train_mode()
        with torch.no_grad():
            low = agent.evaluate_tokens(episodes).logprobs  # under autocast
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():  # fp32: the policy itself, outside the agent's autocast
        high = agent.policy(
            episodes.prompt_ids, episodes.prompt_mask, episodes.tokens, episodes.completion_mask
        ).logprobs
    mask = episodes.completion_mask.bool()
    diff = (low - high).abs()[mask]
    metrics = agent.update(episodes, 0)
    finite = all(bool(torch.isfinite(p).all()) for p in agent.policy.parameters())
    return {
        "max_abs_diff": float(diff.max()),
        "p99_abs_diff": float(diff.quantile(0.99)),
        "mean_abs_diff": float(diff.mean()),
        "logprob_dtype": low.dtype,
        "policy_dtypes": seen["policy"],
        "reference_dtypes": seen["reference"],
        "finite": finite,
        "grad_norm": float(metrics["policy/grad_norm"]),
    }


def passed(result: dict[str, Any]) -> bool:
    return (
        result["policy_dtypes"] == {torch.bfloat16}
        and result["reference_dtypes"] == {torch.bfloat16}
        and result["logprob_dtype"] == torch.float32
        and result["p99_abs_diff"] <= TOLERANCE
        and result["mean_abs_diff"] <= MEAN_TOLERANCE
        and result["finite"]
        and torch.isfinite(torch.tensor(result["grad_norm"])).item()
    )


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bf16", "train", "bench"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this script checks the GPU paths (tests/test_precision.py covers the CPU)")
    print(torch.cuda.get_device_name(), f"bf16 supported: {torch.cuda.is_bf16_supported()}")
    if args.only in (None, "bf16"):
        from textgym.agents import PPO, REINFORCE

        cases = {"REINFORCE": (REINFORCE, {}), "PPO": (PPO, {}), "PPO + LoRA": (PPO, {"lora_r": 8})}
        failed = []
        for name, (cls, config) in cases.items():
            result = check_bf16(cls, "textgym/Sentiment-v0", "cuda", **config)
            ok = passed(result)
            failed += [] if ok else [name]
            print(f"{name}: {'ok' if ok else 'FAILED'} {result}")
        if failed:
            sys.exit(f"bf16 check failed for {failed}")
    if args.only in (None, "train"):
        run([sys.executable, "-m", "textgym", "compare", "--env", "textgym/Sentiment-v0",
             "--agents", "reinforce,ppo", "--seeds", "3", "--timesteps", "16384", "--episodes", "64",
             "--checkpoints", "8", "--set", "ppo.gae_lambda=1.0", "--out", "runs/gpu-check"])  # fmt: skip
    if args.only in (None, "bench"):
        for script, *options in (
            ("rollout.py", "--models", "tiny", "smollm2"),
            ("evaluate.py",),
            ("train.py", "--sweep", "32,64,128,256"),
            ("train.py", "--memory"),
        ):
            run([sys.executable, str(HERE / script), *options, "--device", "cuda"])


if __name__ == "__main__":
    main()
