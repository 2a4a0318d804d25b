"""What a training run is told (``TrainConfig``) and what it reports (``StageReport``,
``StepReport``, ``EpochReport``); a configuration that cannot train is refused here, with a
:class:`TrainingError` naming the field and its value, before any data is read."""

from __future__ import annotations

import dataclasses

from ..errors import ScrollSamError
from . import data as D
from .augment import AugmentConfig


class TrainingError(ScrollSamError, ValueError):
    """Training cannot start (bad data, output folder, checkpoint); says why."""


def _freeze_ok(freeze) -> bool:
    if not isinstance(freeze, str):
        return False
    if freeze in ("encoder", "none"):
        return True
    kind, _, n = freeze.partition(":")
    return n.isdigit() and (kind == "last" or (kind == "lora" and int(n) >= 1))


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3  # measured: benchmarks/finetune_compare.py (README, Fine-tuning)
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0  # linear warm-up, in epochs (the unit of patience)
    warmup_steps: int | None = None  # or in steps, when given (overrides warmup_epochs)
    batch_size: int = 4  # samples (slices, or tiles of large slices) per step
    objects_per_sample: int = 8
    prompt_kinds: tuple = ("point", "box", "background")
    corrective_rounds: int = 1
    single_mask_clicks: bool = False  # one-click prompts also train SAM's single-mask output (what a click shows)
    freeze: str = "last:2"  # "last:N": the encoder's last N blocks + neck + the decoder (finetune_compare: best
    #                         on a volume the model never saw); "lora:R": rank-R adapters on the encoder's attention
    #                         (training.lora) + the decoder; "encoder": image+prompt encoders frozen (cached
    #                         embeddings); "none"
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.2
    patience: int = 5  # epochs without a better validation score before stopping (0: never)
    min_steps: int = 100  # early stopping never fires before this many steps (nor during warm-up)
    min_val_slices: int = 3  # fewer held-out slices than this: validation_warning
    augment: bool = True
    augmentation: AugmentConfig | None = None  # None: AugmentConfig() defaults
    min_area: int = 16
    loss: str = "focal"  # "focal" (SAM's recipe) or "bce" (from scratch); + Dice + IoU MSE both

    def __post_init__(self):
        if not _freeze_ok(self.freeze):
            raise TrainingError(f"freeze must be 'encoder', 'none', 'last:N' or 'lora:R' (R >= 1), "
                                f"not {self.freeze!r}")
        for name in ("epochs", "batch_size", "objects_per_sample"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr >= 0:
            raise TrainingError(f"lr must be >= 0, got {self.lr!r}")
        if not 0 <= self.val_fraction < 1:
            raise TrainingError(f"val_fraction must be in 0..1 (1 excluded), got {self.val_fraction!r}")
        if self.loss not in ("focal", "bce"):
            raise TrainingError(f"loss must be 'focal' or 'bce', not {self.loss!r}")
        if self.warmup_epochs < 0 or (self.warmup_steps is not None and self.warmup_steps < 0):
            raise TrainingError(f"warm-up must be >= 0, got warmup_epochs={self.warmup_epochs!r}, "
                                f"warmup_steps={self.warmup_steps!r}")
        if self.min_steps < 0 or self.patience < 0:
            raise TrainingError(f"min_steps and patience must be >= 0, got min_steps={self.min_steps!r}, "
                                f"patience={self.patience!r}")
        if self.augmentation is not None and not isinstance(self.augmentation, AugmentConfig):
            raise TrainingError(f"augmentation must be an AugmentConfig, not {type(self.augmentation).__name__}")
        bad = [k for k in self.prompt_kinds if k not in D.PROMPT_KINDS]
        if bad:
            raise TrainingError(f"unknown prompt kinds {bad}; use {', '.join(D.PROMPT_KINDS)}")


@dataclasses.dataclass
class StageReport:
    stage: str
    done: int
    total: int


@dataclasses.dataclass
class StepReport:
    step: int
    epoch: int
    loss: float
    parts: dict
    lr: float
    train_iou: float


@dataclasses.dataclass
class EpochReport:
    epoch: int
    step: int
    train_loss: float
    val_iou: float | None
    val_dice: float | None
    best: bool
    checkpoint: str
    stopped: str | None = None
    val_box: float | None = None  # ceiling: each held-out object prompted with its true box
    val_click: float | None = None  # … and with one click at its deepest point
    val_slices: int = 0  # how many held-out slices the validation rests on
