"""The benchmarks' runners do the work they time: each iteration of each system takes env steps.

The figures themselves are the benchmarks' to print (speed is measured by ``bench/``, never by a timed
test); this only keeps the scripts working as the agents' APIs move (``bench/adapters.py`` once timed
TorchRL iterations that took no steps, after ``learn`` came to count a total, and divided by zero).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from textgym.tasks import CopyTask

spec = importlib.util.spec_from_file_location(
    "adapters_bench", Path(__file__).resolve().parent.parent / "bench" / "adapters.py"
)
adapters = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = adapters  # its dataclasses look their module up there
spec.loader.exec_module(adapters)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list(adapters.RUNNERS))
def test_every_adapter_runner_takes_a_whole_iteration_of_env_steps(name):
    setting = adapters.Setting(
        "textgym/Copy-v1", CopyTask().build_model(), envs=4, tokens=6, epochs=1, minibatches=2, kl_coef=0.05
    )
    runner = adapters.RUNNERS[name](setting)
    for _ in range(2):  # the second call continues the run: a total-counting learn() must go on
        steps = runner.iterate()
        assert 0 < steps <= setting.steps_per_iteration, (name, steps)
