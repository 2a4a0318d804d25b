"""nss.run drains report generators (closing them), and the console namespace is complete."""

from __future__ import annotations

from dataclasses import dataclass

import napari_scroll_sam as nss


@dataclass
class R:
    done: int
    total: int


def test_run_drains_and_closes():
    closed = []

    def gen():
        try:
            for i in range(1, 6):
                yield R(i, 5)
        finally:
            closed.append(True)

    reports = nss.run(gen(), progress=False)
    assert [r.done for r in reports] == [1, 2, 3, 4, 5] and closed == [True]
    assert nss.run(gen(), keep=False, progress=False) == [R(5, 5)]


def test_run_cancels_on_ctrl_c():
    closed = []

    def gen():
        try:
            yield R(1, 3)
            raise KeyboardInterrupt
        finally:
            closed.append(True)

    assert nss.run(gen(), progress=False) == [R(1, 3)] and closed == [True]


def test_one_namespace_for_the_console():
    for name in ("open_volume", "load_model", "SliceEmbedder", "Seed", "StopRule", "propagate", "TrainingPair",
                 "Trainer", "TrainConfig", "write_labels", "EverySlice", "Tuples", "RandomTuples", "Filtered",
                 "run", "volume_from_layer", "ScrollSamError", "training_run"):
        assert name in nss.__all__ and getattr(nss, name) is not None
    from napari_scroll_sam.propagation import propagate
    from napari_scroll_sam.training.trainer import Trainer

    from napari_scroll_sam.training.job import training_run

    assert nss.propagate is propagate and nss.Trainer is Trainer and nss.training_run is training_run
