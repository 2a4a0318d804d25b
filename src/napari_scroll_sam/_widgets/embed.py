"""The Segment widget's "Embedding cache" section: encode the sampling mode's slices into
the disk cache (``SliceEmbedder.embed``), with progress here and in napari's activity panel;
Cancel stops after the batch being encoded (the slices done stay cached)."""

from __future__ import annotations

import time

from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ._workers import REFRESH_EVERY_S, Job


class EmbedSection(QWidget):
    def __init__(self, segment):
        super().__init__()
        self.seg = segment
        self.job: Job | None = None
        self._pbar = None
        self._last_shown = 0.0
        self.counts = {"cached": 0, "encoded": 0, "done": 0, "total": 0, "failed": False}
        self.embed_button = QPushButton("Embed volume",
                                        toolTip="encode the sampling mode's slices into the embedding cache")
        self.cancel_button = QPushButton("Cancel", enabled=False, toolTip="stop embedding (slices done stay cached)")
        self.progress_bar = QProgressBar(visible=False, format="%v / %m slices")
        row = QHBoxLayout()
        row.addWidget(self.embed_button, 1)
        row.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.progress_bar)
        self.embed_button.clicked.connect(lambda: self.embed())
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def embed(self) -> None:
        seg = self.seg
        if self.running:
            return
        seg._clear_error()

        def prepare():
            vol = seg.volume()
            if vol is None:
                raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
            return vol, seg.mode_selector.mode(), seg._wanted_model_key()

        prepared = seg._try(prepare)
        if prepared is None:
            seg.embed_finished.emit(False)
            return
        self.embed_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first report
        self.progress_bar.setVisible(True)
        seg.status_label.setText("embedding: choosing slices…")
        self.counts = {"cached": 0, "encoded": 0, "done": 0, "total": 0, "failed": False}
        self.job = Job(self._gen(*prepared), on_yield=self._on_item, on_error=self._on_error,
                       on_finish=self._on_finished)
        self.job.start()

    def _gen(self, vol, mode, key):
        from ..sam.embeddings import SliceEmbedder

        model = yield from self.seg._model_job_part(key)
        reports = SliceEmbedder(model, vol, mode).embed()  # its own: Segment may use its one meanwhile
        try:
            yield from reports
        finally:
            reports.close()

    def _on_item(self, item):
        from ..sam.embeddings import EmbedReport

        if not isinstance(item, EmbedReport):
            self.seg._on_job_item(item)
            return
        c = self.counts
        c["cached" if item.cached else "encoded"] += 1
        c["done"], c["total"] = item.done, item.total
        self.seg.embed_report.emit(item)
        now = time.monotonic()  # progress events batched: a few a second, and the last one
        if now - self._last_shown < REFRESH_EVERY_S and item.done < item.total:
            return
        self._last_shown = now
        self.progress_bar.setRange(0, item.total)
        self.progress_bar.setValue(item.done)
        self.seg.status_label.setText(f"embedding: {item.done} / {item.total} slices ({c['cached']} already cached)")
        if self.job is not None and self.job.cancelled:
            return
        from napari.utils import progress

        if self._pbar is None:  # napari's activity panel
            self._pbar = progress(total=item.total, desc=f"Embedding {self.seg.image_combo.currentText()}")
        self._pbar.update(item.done - self._pbar.n)

    def _on_error(self, exc):
        self.counts["failed"] = True
        self.seg._show_error(exc)

    def cancel(self) -> None:
        if self.running:
            self.seg.status_label.setText("cancelling after the current batch…")
            self.cancel_button.setEnabled(False)
            self.job.cancel()

    def _on_finished(self, cancelled: bool):
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self._last_shown = 0.0
        self.embed_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        c = self.counts
        if self.progress_bar.maximum() == 0:  # never reported
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setVisible(False)
        if cancelled:
            text = (f"embedding cancelled after {c['done']} of {c['total']} slices "
                    f"(they stay in the cache; Embed again resumes)")
        elif not c["failed"]:
            text = f"embedded {c['done']} slices ({c['encoded']} encoded now, {c['cached']} from the cache)"
        else:
            text = f"embedding stopped after {c['done']} of {c['total']} slices (they stay in the cache)"
        self.seg.status_label.setText(text)
        self.seg.embed_finished.emit(cancelled)
