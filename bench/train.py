"""Time of one training iteration (rollout + update) of our agents, as ratios against TRL's RLOOTrainer.

Every system trains SmolLM2-135M-Instruct (the embedded default model, fp32, CPU) on the prompts of
``textgym/Sentiment-v0`` (a movie-review opening behind the task's instruction, through the chat
template), with the same batch: ``--batch`` completions per iteration, ``num_generations=2`` per prompt,
at most ``--tokens`` generated tokens each (sampling at temperature 1 stops at EOS), rewarded by
:func:`textgym.rewards.vader_sentiment`, with a KL penalty of 0.05 to the frozen model and AdamW at
lr 1e-6:

- ``TRL RLOO``: ``trl.RLOOTrainer``, one optimizer step (``num_iterations=1``): ``model.generate``, a
  reference forward, the reward, one forward/backward. The yardstick.
- ``REINFORCE (rloo)``: our :class:`agents.REINFORCE` with the RLOO baseline: the vector env's KV-cached
  rollout (the reference stepped alongside, KL-shaped return), one forward/backward.
- ``PPO``: our :class:`agents.PPO` with its defaults: the same rollout, then a no-grad forward for the old
  log-probs and values and ``ppo_epochs`` (4) forward/backward passes: more work per iteration by design.

One iteration of ours is ``agent.collect(i)`` then ``agent.update(episodes, i)``, exactly what
``agent.learn`` runs per iteration. TRL's is the wall time between the trainer's ``on_step_begin`` and
``on_step_end`` callbacks (its generation happens inside the step). The systems run interleaved in one
process: after each TRL step a callback runs one iteration of each of our agents, so all of them see the
same machine load. The first round is a warm-up and is not timed. The table shows median seconds per
iteration and the median over rounds of (ours / TRL's time in the same round); absolute times mean little
on a noisy machine, the ratios are the result. Target: ratio <= 1.0.

Needs ``trl`` (``pip install 'textgym[bench]'``). Usage:
``python bench/train.py [--batch 8] [--tokens 32] [--iterations 3]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from typing import Any

import torch

import textgym  # noqa: F401  (registers the envs)
from agents import PPO, REINFORCE
from agents.base import LMAgent
from textgym.models import load_model
from textgym.rewards import vader_sentiment
from textgym.tasks.sentiment import INSTRUCTION, load_openings, split_of

ENV_ID = "textgym/Sentiment-v0"
NUM_GENERATIONS = 2
KL_COEF = 0.05
LEARNING_RATE = 1e-6
SEED = 0


def sentiment_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
    """:func:`vader_sentiment` on TRL's completions, which are message lists for conversational prompts."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return vader_sentiment(prompts, texts, **kwargs)


def make_trl_trainer(
    model_path: str, tokenizer, batch: int, tokens: int, steps: int, output_dir: str, callback
):
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    openings = [o for o in load_openings() if split_of(o) == "train"]
    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": f"{INSTRUCTION}{o}"}] for o in openings],
            "polarity": ["positive"] * len(openings),
        }
    )
    args = RLOOConfig(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,  # TRL's default is True; ours is off
        per_device_train_batch_size=batch,  # completions per optimizer step
        gradient_accumulation_steps=1,
        num_generations=NUM_GENERATIONS,
        max_completion_length=tokens,
        temperature=1.0,
        beta=KL_COEF,
        num_iterations=1,
        learning_rate=LEARNING_RATE,
        max_grad_norm=1.0,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=SEED,
    )
    return RLOOTrainer(
        model=model_path,  # TRL loads its own trainable copy and, for beta > 0, its reference from here
        reward_funcs=sentiment_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[callback],
    )


def make_interleaver(agents: dict[str, LMAgent]):
    from transformers import TrainerCallback

    class Interleave(TrainerCallback):
        """Times TRL's steps and, after each, runs and times one iteration of each of our agents."""

        def __init__(self) -> None:
            self.times: dict[str, list[float]] = {"TRL RLOO": [], **{name: [] for name in agents}}
            self.start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times["TRL RLOO"].append(time.perf_counter() - self.start)
            round_ = len(self.times["TRL RLOO"]) - 1
            for name, agent in agents.items():
                start = time.perf_counter()
                episodes = agent.collect(round_)
                agent.train_mode()
                agent.update(episodes, round_)
                self.times[name].append(time.perf_counter() - start)
            line = "  ".join(f"{name} {t[-1]:.2f}s" for name, t in self.times.items())
            print(f"round {round_}{' (warm-up)' if round_ == 0 else ''}: {line}", flush=True)

    return Interleave()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="completions per iteration (prompts x 2)")
    parser.add_argument("--tokens", type=int, default=32, help="max generated tokens per completion")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (after one warm-up)")
    args = parser.parse_args()
    if args.batch % NUM_GENERATIONS:
        parser.error(f"--batch must be a multiple of num_generations={NUM_GENERATIONS}")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(SEED)

    bundle = load_model("smollm2", device="cpu")
    if getattr(bundle.model.config, "quantization_config", None) is not None:
        raise SystemExit("the default model is still quantized (GGUF); TRL cannot train it")
    common = {
        "batch_size": args.batch,
        "learning_rate": LEARNING_RATE,
        "kl_coef": KL_COEF,
        "device": "cpu",
        "seed": SEED,
        "env_kwargs": {"generation_budget": args.tokens},
    }
    agents: dict[str, LMAgent] = {
        "REINFORCE (rloo)": REINFORCE(ENV_ID, baseline="rloo", num_generations=NUM_GENERATIONS, **common),
        "PPO": PPO(ENV_ID, **common),
    }
    callback = make_interleaver(agents)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = make_trl_trainer(
            bundle.model.name_or_path,
            bundle.tokenizer,
            args.batch,
            args.tokens,
            args.iterations + 1,
            output_dir,
            callback,
        )
        trainer.train()

    import trl

    times = {name: t[1:] for name, t in callback.times.items()}  # drop the warm-up round
    yardstick = times["TRL RLOO"]
    print(
        f"\n{args.batch} completions ({args.batch // NUM_GENERATIONS} prompts x {NUM_GENERATIONS}), "
        f"<= {args.tokens} tokens, {ENV_ID} prompts, SmolLM2-135M-Instruct fp32 on CPU "
        f"({torch.get_num_threads()} threads), trl {trl.__version__}, median of {len(yardstick)} rounds"
    )
    print(f"{'system':<18} {'s/iteration':>12} {'vs TRL':>8}")
    for name, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, yardstick, strict=True))
        print(f"{name:<18} {statistics.median(t):>12.2f} {ratio:>8.2f}")


if __name__ == "__main__":
    main()
