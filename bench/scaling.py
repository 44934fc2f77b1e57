"""Data-parallel throughput: env steps (generated tokens) per second on 1 and 2 processes, as ratios.

Three launches of the same training, each in fresh processes, at the same global batch and seed:

- ``1 process, 1 thread``: the yardstick;
- ``1 process, 2 threads``: what one process gets from the whole machine;
- ``2 processes x 1 thread``: ``torchrun --nproc-per-node 2``, gloo, each rank half the batch.

Each runs ``--iterations`` timed iterations of REINFORCE (RLOO) after one warm-up iteration; rank 0
reports the global tokens per second. The table gives each as a ratio to the yardstick. On a 2-core CPU
the best data parallel can do is 2x the 1-thread figure, and it competes with one process using both
cores through intra-op threads, which helps the big matmuls of a real model and little on a tiny one.

Then, from the model's parameter count, the expected scaling on GPUs: what DDP all-reduces per iteration
(fp32 gradients, ring all-reduce: ``2 (W-1)/W`` times their bytes per rank) against the compute per
iteration (FLOPs of generation, the reference's pass and the training forward/backward), for the
default model and a 1B-parameter one. That part is arithmetic under stated assumptions, not a measurement.

Usage: ``python bench/scaling.py [--env textgym/Pattern-v0] [--batch 16] [--iterations 10]``
(``--env textgym/Sentiment-v0`` trains the default model; ``--iterations 3`` keeps it to minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from textgym import distributed

HERE = Path(__file__).resolve()

# Assumptions of the GPU estimate (H100 SXM class), stated in the output.
GPU_BF16_FLOPS = 989e12 * 0.4  # dense bf16 peak at 40% utilisation for the teacher-forced passes
GPU_MEMORY_BANDWIDTH = 3.35e12 * 0.7  # bytes/s: decoding one token reads every bf16 weight once
LINKS = {"NVLink (one node, ~150 GB/s bus bandwidth)": 150e9, "100 Gb/s InfiniBand (across nodes)": 11e9}


def worker(env_id: str, batch: int, iterations: int, out: str) -> None:
    """Train inside this (possibly torchrun) process; rank 0 writes the global tokens per second."""
    from textgym.agents import REINFORCE

    agent = REINFORCE(env_id, batch_size=batch, learning_rate=1e-5, num_generations=2, seed=0, device="cpu")
    tokens, elapsed = 0, 0.0
    for iteration in range(iterations + 1):
        start = time.perf_counter()
        episodes = agent.collect(iteration)
        agent.train_mode()
        agent.update(episodes, iteration)
        count = int(distributed.total(int(episodes.lengths.sum())))  # also waits for the slowest rank
        if iteration:  # the first iteration warms up
            tokens, elapsed = tokens + count, elapsed + time.perf_counter() - start
    if distributed.is_main():
        figures = {
            "tokens_per_second": tokens / elapsed,
            "parameters": sum(p.numel() for p in agent.policy.lm_parameters()),
            "tokens_per_episode": tokens / iterations / batch,
        }
        Path(out).write_text(json.dumps(figures))


def launch(name: str, processes: int, threads: int, args: argparse.Namespace) -> dict[str, float]:
    out = Path(args.scratch) / f"{processes}x{threads}.json"
    command = [str(HERE), "--worker", "--env", args.env, "--batch", str(args.batch)]
    command += ["--iterations", str(args.iterations), "--out", str(out)]
    if processes > 1:
        command = ["-m", "torch.distributed.run", "--nproc-per-node", str(processes), *command]
    environ = {**os.environ, "OMP_NUM_THREADS": str(threads), "TEXTGYM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, *command], env=environ, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def gpu_estimate(
    parameters: float, batch: int, prompt: float, completion: float, world: int = 8
) -> list[str]:
    """Seconds of compute and of gradient all-reduce per iteration on ``world`` GPUs (no overlap)."""
    per_rank = batch / world
    sequence = prompt + completion
    # Forward 2 FLOPs per parameter per token; backward twice that.
    teacher_forced = (2 + 6) * parameters * per_rank * sequence  # reference pass, training pass
    compute = teacher_forced / GPU_BF16_FLOPS + completion * 2 * parameters / GPU_MEMORY_BANDWIDTH
    volume = 2 * (world - 1) / world * 4 * parameters  # fp32 gradients, ring all-reduce, per rank
    lines = [
        f"- {parameters / 1e9:.2f}B parameters, {world} GPUs, {per_rank:g} episodes of {sequence:.0f} "
        f"tokens per GPU: compute {compute * 1e3:.0f} ms per iteration, all-reduce {volume / 1e9:.2f} GB"
    ]
    for link, bandwidth in LINKS.items():
        comm = volume / bandwidth
        lines.append(f"  - {link}: {comm * 1e3:.0f} ms, efficiency >= {compute / (compute + comm):.0%}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="textgym/Pattern-v0")
    parser.add_argument("--batch", type=int, default=16, help="global episodes per iteration")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations (after one warm-up)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", default="/tmp", help="where the launches write their figures")
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ["TEXTGYM_THREADS"]))
        worker(args.env, args.batch, args.iterations, args.out)
        return

    launches = {
        "1 process, 1 thread": (1, 1),
        "1 process, 2 threads": (1, 2),
        "2 processes x 1 thread": (2, 1),
    }
    figures = {name: launch(name, p, t, args) for name, (p, t) in launches.items()}
    base = figures["1 process, 1 thread"]["tokens_per_second"]
    print(
        f"{args.env}, global batch {args.batch}, {args.iterations} timed iterations, {os.cpu_count()} cores\n"
    )
    print("| launch | tokens/s vs 1 process, 1 thread |\n| --- | --- |")
    for name, fig in figures.items():
        print(f"| {name} | {fig['tokens_per_second'] / base:.2f}x |")
    fig = figures["1 process, 1 thread"]
    print(
        f"\nExpected on GPUs (arithmetic: {GPU_BF16_FLOPS / 1e12:.0f} TFLOP/s for teacher-forced passes, "
        f"decoding bound by {GPU_MEMORY_BANDWIDTH / 1e12:.1f} TB/s of weight reads; fp32 gradients):"
    )
    for parameters in (135e6, 1e9):  # the default model (SmolLM2-135M) and a 1B model
        for line in gpu_estimate(parameters, 64, 128, 64):
            print(line)
    print(
        "The floors count the all-reduce as added time; DDP overlaps it with the backward pass, and\n"
        "eager decoding is bound by kernel launches (milliseconds per token) rather than the bandwidth\n"
        "assumed, so real iterations are longer and the communication's share smaller."
    )
    size, length = fig["parameters"] / 1e6, fig["tokens_per_episode"]
    print(f"\n(this run's model: {size:.1f}M parameters, {length:.1f} tokens per episode)")


if __name__ == "__main__":
    main()
