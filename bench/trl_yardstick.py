"""TRL's RLOOTrainer set up on textgym/Sentiment-v0 exactly as our agents see it: the yardstick of bench/.

The prompts are the task's train-split review openings behind its instruction, as chat messages (TRL
applies the model's chat template, as the env does); the reward is :func:`textgym.rewards.vader_sentiment`
on the completion; sampling is plain (temperature 1, no top-k/top-p) and the KL penalty is TRL's k1 summed
over the sequence and subtracted from the score, as in our REINFORCE. Needs ``trl``
(``pip install 'textgym[bench]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textgym.rewards import vader_sentiment
from textgym.tasks.sentiment import INSTRUCTION, SentimentTask, load_openings

ENV_ID = "textgym/Sentiment-v0"
NUM_GENERATIONS = 2  # completions per prompt (TRL's RLOO default)
KL_COEF = 0.05  # the task's default beta, and TRL's


def sentiment_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
    """:func:`vader_sentiment` on TRL's completions, which are message lists for conversational prompts."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return vader_sentiment(prompts, texts, **kwargs)


def make_rloo_trainer(
    model_path: str,
    tokenizer: Any,
    *,
    batch: int,
    tokens: int,
    steps: int,
    learning_rate: float,
    output_dir: str,
    callbacks: Sequence[Any] = (),
    num_iterations: int = 1,
    seed: int = 0,
    device: str = "cpu",
):
    """An ``RLOOTrainer`` taking one optimizer step per ``batch`` completions (``batch / 2`` prompts x 2).

    ``num_iterations`` > 1 reuses each generated batch for that many clipped optimizer steps (TRL's
    multi-epoch mode, the counterpart of PPO's epochs). The learning rate is constant and gradient
    checkpointing off, as in our agents (TRL's defaults: linear decay, checkpointing on).
    """
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    task = SentimentTask()
    openings = [o for o in load_openings() if task.split_of(o) == "train"]
    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": f"{INSTRUCTION}{o}"}] for o in openings],
            "polarity": ["positive"] * len(openings),
        }
    )
    args = RLOOConfig(
        output_dir=output_dir,
        use_cpu=device == "cpu",
        bf16=device == "cuda",  # our agents' bf16 autocast on CUDA
        fp16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_generations=NUM_GENERATIONS,
        max_completion_length=tokens,
        temperature=1.0,
        beta=KL_COEF,
        num_iterations=num_iterations,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
    )
    return RLOOTrainer(
        model=model_path,  # TRL loads its own trainable copy and, for beta > 0, its reference from here
        reward_funcs=sentiment_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
