"""The learning-rate schedule and early stopping, both counted so that they fit 10 slices
as well as 10,000: linear warm-up then cosine to zero; stop after ``patience`` epochs
without a better validation score, never before ``min_steps`` steps nor during warm-up."""

from __future__ import annotations

import math


def lr_at(step: int, lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of (0-based) ``step``: warm-up over ``warmup_steps``, then cosine."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class EarlyStop:
    """Counts epochs without a better score; says when (and why) to stop."""

    def __init__(self, patience: int, min_steps: int, warmup_steps: int, best: float = -1.0):
        self.patience, self.min_steps, self.warmup_steps = patience, min_steps, warmup_steps
        self.best, self.bad_epochs = best, 0

    def update(self, score: float) -> bool:
        """Record an epoch's score; True when it is a new best."""
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            return True
        self.bad_epochs += 1
        return False

    def reason(self, step: int, epoch: int, epochs: int) -> str | None:
        """Why to stop now (None: go on). The last epoch ends the run anyway: no reason then."""
        if (self.patience and self.bad_epochs >= self.patience and epoch < epochs
                and step >= max(self.min_steps, self.warmup_steps)):
            return f"no better validation score for {self.bad_epochs} epochs"
        return None
