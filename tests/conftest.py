"""Shared fixtures: tiny models with sharp (far from uniform) logits, so that checks of log-probs fail
loudly when a token is scored at the wrong position."""

from __future__ import annotations

import pytest
import torch

from textgym.models import ModelBundle
from textgym.tasks import CopyTask


def sharpen(bundle: ModelBundle, seed: int = 0, std: float = 0.5) -> ModelBundle:
    """A copy of ``bundle`` with large random weights: next-token distributions that depend on context."""
    sharp = bundle.trainable_copy()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in sharp.model.parameters():
            if param.ndim > 1:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    sharp.model.eval().requires_grad_(False)
    return sharp


@pytest.fixture(scope="session")
def copy_bundle() -> ModelBundle:
    return CopyTask().build_model()


@pytest.fixture(scope="session")
def sharp_bundle(copy_bundle: ModelBundle) -> ModelBundle:
    return sharpen(copy_bundle)


def independent_ref_logprobs(
    model: torch.nn.Module, prompt: list[int], completion: list[int]
) -> torch.Tensor:
    """log p(completion[t] | prompt + completion[:t]) from one unpadded, uncached forward pass."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
    positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(completion))
    return logprobs[positions, torch.tensor(completion)]


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: on tiny models more threads only add overhead (a busy 2-core
    machine makes it worse). Modules take it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
