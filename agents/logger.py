"""Metrics to TensorBoard and a CSV file, one row per iteration (TRL-style names such as ``objective/kl``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path


class MetricLogger:
    """Writes each iteration's scalars to ``<log_dir>/progress.csv`` and TensorBoard event files.

    ``start_iteration`` is the first iteration this logger will log. The CSV is appended to, after
    dropping rows from that iteration on (an interrupted run may have logged iterations that the
    checkpoint it resumes from does not hold).
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None, start_iteration: int = 0) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.rows: list[dict[str, float]] = []
        self._writer = None
        if self.log_dir is None:
            return
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is slow to import

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.log_dir / "progress.csv"
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                self.rows = [
                    {k: float(v) for k, v in row.items() if v != ""}
                    for row in csv.DictReader(f)
                    if float(row["iteration"]) < start_iteration
                ]
        self._rewrite()
        self._writer = SummaryWriter(str(self.log_dir), purge_step=start_iteration)

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        row = {"iteration": float(iteration), **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        if self.log_dir is None:
            return
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, iteration)
        self._writer.flush()
        self._rewrite()

    def _rewrite(self) -> None:
        # The whole file is rewritten (it is small) so that a metric first seen late still gets a column.
        fields = list(dict.fromkeys(k for row in self.rows for k in row)) or ["iteration"]
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.csv_path)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
