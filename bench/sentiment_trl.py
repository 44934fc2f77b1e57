"""TRL's RLOOTrainer on textgym/Sentiment-v0 at our agents' sample budget, measured by textgym.evaluate.

The counterpart of ``textgym train --env textgym/Sentiment-v0`` for TRL: the same model
(SmolLM2-135M-Instruct, fp32, CPU), train prompts, reward, KL coefficient (0.05), batch (``--batch-size``
completions per step, 2 per prompt), learning rate (constant), completion budget (the task's 32 tokens)
and number of training episodes, then the same held-out evaluation before and after (``--eval-episodes``
test prompts, temperature 1, seeded like ours so both see the same prompts)::

    python bench/sentiment_trl.py --episodes 800 --batch-size 8 --lr 1e-5 --eval-episodes 32

Needs ``trl`` (``pip install 'textgym[bench]'``).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import warnings

import torch
from trl_yardstick import ENV_ID, KL_COEF, make_rloo_trainer

import textgym
from textgym.evaluation import Evaluation, markdown_table
from textgym.models import load_model
from textgym.tasks.sentiment import SentimentTask


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=800, help="training completions")
    parser.add_argument("--batch-size", type=int, default=8, help="completions per optimizer step")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/sentiment_trl", help="TRL's output_dir (its logs)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(args.seed)

    bundle = load_model("smollm2", device="cpu")  # the env's reference, and the weights TRL starts from
    steps = math.ceil(args.episodes / args.batch_size)
    trainer = make_rloo_trainer(
        bundle.model.name_or_path,
        bundle.tokenizer,
        batch=args.batch_size,
        tokens=SentimentTask.generation_budget,  # the env's completion budget
        steps=steps,
        learning_rate=args.lr,
        output_dir=args.out,
        seed=args.seed,
    )

    def evaluate() -> Evaluation:
        trainer.model.eval()
        return textgym.evaluate(
            trainer.model,
            ENV_ID,
            args.eval_episodes,
            split="test",
            seed=args.seed,
            num_envs=args.batch_size,
            model=bundle,
            kl_coef=KL_COEF,
        )

    before = evaluate()
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    after = evaluate()
    import trl

    print(
        f"\nTRL {trl.__version__} RLOOTrainer on {ENV_ID}, {steps * args.batch_size} training episodes "
        f"({steps} steps, {minutes:.1f} min of training); held-out figures:\n"
    )
    print(markdown_table({"before": before, "after": after}))


if __name__ == "__main__":
    main()
