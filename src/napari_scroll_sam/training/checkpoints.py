"""A trainer's output folder and checkpoints: checked before training, written atomically
(``last.pt`` every epoch, ``best.pt`` on a new best), read back to resume.

A checkpoint holds the model (a LoRA run's adapters folded into the weights, so it loads
as the plain architecture; the adapters themselves ride along as ``lora`` for resuming),
optimizer, config, sampling mode, window, step, epoch, best score and history."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..sam.checkpoint import read_checkpoint, save_checkpoint
from .config import TrainingError
from .lora import has_lora, load_lora_state, load_plain_state, lora_state, merged_copy


def check_out_dir(out_dir: Path):
    """Create ``out_dir`` and prove it writable (a probe file), or raise a TrainingError."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"{out_dir}: cannot create the output folder ({exc})") from exc
    from ..io.atomic import WriteError, check_writable

    try:  # a probe file: permission bits mislead root and read-only mounts
        check_writable(out_dir, f"{out_dir}: the output folder")
    except WriteError as exc:
        raise TrainingError(str(exc)) from None


def save(trainer, name: str) -> Path:
    """Write ``trainer``'s state to ``out_dir / name``; the previous file stays whole on failure."""
    first = trainer.pairs[0].image
    path = trainer.out_dir / name
    lora = {"lora": lora_state(trainer.sam)} if has_lora(trainer.sam) else {}
    model = dataclasses.replace(trainer.model, sam=merged_copy(trainer.sam)) if lora else trainer.model
    try:
        return save_checkpoint(
            path, model, **lora, optimizer=trainer.optimizer.state_dict(), step=trainer.step,
            epoch=trainer.epoch, best_score=trainer.best_score, history=trainer.history,
            sampling=trainer.embedders[0].mode.key(), window=list(first.contrast_limits),
            train_config=dataclasses.asdict(trainer.config))
    except OSError as exc:  # full or read-only disk: the previous file is whole (written atomically)
        from ..io.atomic import describe_os_error

        kept = f"the previous {name} is untouched" if path.exists() else "none was written"
        raise TrainingError(f"{path}: cannot write the checkpoint of epoch {trainer.epoch} "
                            f"({describe_os_error(exc)}); {kept}") from exc


def resume(trainer, path):
    """Load model, optimizer, step, epoch, best score and history from checkpoint ``path``."""
    ck = read_checkpoint(path)
    if ck["config"]._structure() != trainer.model.config._structure():
        raise TrainingError(f"{path}: a checkpoint of another model ({ck['config'].describe()}) "
                            f"cannot resume training of {trainer.model.config.describe()}")
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()}
    ex = ck["extra"]
    if has_lora(trainer.sam):
        if "lora" not in ex:
            raise TrainingError(f"{path}: holds no LoRA adapters, so it cannot resume a freeze="
                                f"{trainer.config.freeze!r} run")
        load_plain_state(trainer.sam, sd)
        load_lora_state(trainer.sam, ex["lora"], merged_weights=True)
    else:
        trainer.sam.load_state_dict(sd)
    if "optimizer" in ex:
        try:
            trainer.optimizer.load_state_dict(ex["optimizer"])
        except ValueError as exc:  # another freeze: other parameters
            raise TrainingError(f"{path}: its optimizer state does not fit freeze={trainer.config.freeze!r} "
                                f"(saved by a run that trained other parameters: {exc})") from exc
    trainer.step, trainer.epoch = int(ex.get("step", 0)), int(ex.get("epoch", 0))
    trainer.best_score = float(ex.get("best_score", -1.0))
    trainer.history = list(ex.get("history", []))
