"""A training run as one generator, for the Train widget or a script: the model loaded
(weights downloaded once, with ``DownloadReport`` s) or copied, the ``Trainer`` built, then
its reports::

    import napari_scroll_sam as nss
    from napari_scroll_sam.training.job import training_run
    reports = nss.run(training_run(pairs, "ckpt/", nss.TrainConfig(epochs=1), name="small"))

``make_trainer`` is the middle step alone: ``Trainer(...)``, and when that fails (bad data,
no object, an output folder that cannot be written) the folders it created for the output
folder are removed again, so a failed start leaves nothing on disk. No Qt, no napari.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Iterator

from .trainer import Trainer


@dataclasses.dataclass
class TrainerReady:
    """``training_run``'s news: the trainer is built (data checked, samples made); its
    ``run()`` reports follow."""

    trainer: Trainer


def make_trainer(model, pairs, out_dir, config=None, **kwargs) -> Trainer:
    """``Trainer(model, pairs, out_dir, config, **kwargs)``; when it raises, the folders it made
    for ``out_dir`` (``out_dir`` and missing parents, only while empty) are removed again and
    the error goes on."""
    out_dir = Path(out_dir)
    made = [d for d in (out_dir, *out_dir.parents) if not d.exists()]
    try:
        return Trainer(model, pairs, out_dir, config, **kwargs)
    except BaseException:
        for d in made:  # deepest first: a folder that is not empty (or not ours) stops it
            try:
                d.rmdir()
            except OSError:
                break
        raise


def training_run(pairs, out_dir, config=None, *, model=None, name: str | None = None, device: str = "cpu",
                 mode=None, val_slices: dict | None = None) -> Iterator:
    """Train from ``model`` (a SamModel, deep-copied: training changes weights in place, the
    caller's stays as it was) or, when it is None, from ``load_model(name, device)`` (a
    name's weights downloaded first if they are not cached). Yields status strings,
    ``DownloadReport`` s, ``TrainerReady(trainer)``, then ``trainer.run()``'s reports; closing
    the generator cancels the run (finished epochs' checkpoints stay)."""
    if model is None:
        if name is None:
            raise ValueError("training_run: give a model or a model name")
        from ..sam.models import load_model
        from ..sam.weights import download_reports

        yield f"loading {name} on {device}…"
        yield from download_reports(name)  # Meta's weights, once: DownloadReports
        model = load_model(name, device)
    else:
        model = copy.deepcopy(model)
    yield "checking the training data…"
    trainer = make_trainer(model, pairs, out_dir, config, mode=mode, val_slices=val_slices)
    yield TrainerReady(trainer)
    reports = trainer.run()
    try:
        yield from reports
    finally:
        reports.close()


__all__ = ["TrainerReady", "make_trainer", "training_run"]
