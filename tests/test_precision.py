"""The agents' bf16 path, checked on the CPU: what ``bench/gpu_check.py`` checks on CUDA.

One iteration of each agent (and PPO with LoRA) under bf16 autocast (``bf16_cpu=True``), on a tiny model:
the sampler, the env's reference and the teacher-forced pass run their linear layers in bf16 (nothing
silently in fp32), the log-probs match an fp32 pass over the same episodes, and the update leaves every
weight finite. Measured on a tiny Copy model: largest difference 0.0028-0.0041 nats, mean 0.0008, so
the test asks for at most 0.01 and 0.003, besides ``gpu_check.passed`` (the criteria a GPU run is held to).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from textgym.agents import PPO, REINFORCE
from textgym.models import tiny_model
from textgym.tasks import CopyTask

spec = importlib.util.spec_from_file_location(
    "gpu_check", Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"
)
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "cls, lora_r", [(REINFORCE, 0), (PPO, 0), (PPO, 4)], ids=["reinforce", "ppo", "ppo-lora"]
)
def test_one_bf16_iteration_matches_fp32_and_stays_finite(cls, lora_r):
    # A model of its own: a LoRA adapter goes into the model itself, and the suite shares Copy's tiny model.
    bundle = tiny_model(CopyTask().corpus(), seed=12)
    result = gpu_check.check_bf16(
        cls, "textgym/Copy-v1", "cpu", batch_size=4, learning_rate=1e-3, lora_r=lora_r,
        env_kwargs={"model": bundle, "kl_coef": 0.1},
    )  # fmt: skip
    assert result["policy_dtypes"] == {torch.bfloat16}, result
    assert result["reference_dtypes"] == {torch.bfloat16}, result
    assert result["logprob_dtype"] == torch.float32  # the log-softmax itself runs in fp32
    assert 0 < result["max_abs_diff"] <= 0.01, result  # > 0: bf16 really ran
    assert result["mean_abs_diff"] <= 0.003, result
    assert result["finite"] and torch.isfinite(torch.tensor(result["grad_norm"])), result
    assert gpu_check.passed(result)


def test_without_bf16_cpu_the_cpu_runs_fp32():
    agent = REINFORCE("textgym/Copy-v1", batch_size=4, device="cpu")
    with agent.autocast():
        out = agent.policy.lm(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert out.dtype == torch.float32
