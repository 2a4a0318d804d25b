"""``run(generator)``: drain any of the package's report generators with a progress bar.

Every long job here is a generator of small reports (``SliceEmbedder.embed``,
``propagate``, ``Trainer.run``) so that it can be watched and cancelled. In a script or
napari's console you often just want it done, with a bar::

    import napari_scroll_sam as nss
    reports = nss.run(nss.propagate(emb, seeds, labels))      # a tqdm bar; Ctrl+C cancels
    reports[-1]

The bar's total comes from the reports when they carry one (``EmbedReport.total``,
``StageReport.total``) or from ``total=``; the generator is closed at the end, also on
Ctrl+C or an error, so its ``finally`` blocks run (finished slices stay written,
checkpoints of finished epochs stay). No Qt, no napari.
"""

from __future__ import annotations

from typing import Iterable


def _describe(report) -> str:
    for name in ("loss", "iou", "area"):
        v = getattr(report, name, None)
        if isinstance(v, (int, float)):
            return f"{name}={v:.3g}" if isinstance(v, float) else f"{name}={v}"
    return ""


def run(generator: Iterable, desc: str | None = None, total: int | None = None, keep: bool = True,
        progress: bool = True) -> list:
    """Iterate ``generator`` to the end with a progress bar; return its reports (``keep=False``:
    only the last one, in a list). ``KeyboardInterrupt`` closes the generator (a cancel) and
    returns what was done so far."""
    from tqdm import tqdm

    reports: list = []
    bar = tqdm(total=total, desc=desc or type(generator).__name__, disable=not progress, leave=True)
    try:
        for report in generator:
            if keep:
                reports.append(report)
            else:
                reports[:] = [report]
            t = getattr(report, "total", None)
            if isinstance(t, int) and t != bar.total:
                bar.total = t
            done = getattr(report, "done", None)
            if isinstance(done, int):
                bar.n = done
                bar.refresh()
            else:
                bar.update(1)
            text = _describe(report)
            if text:
                bar.set_postfix_str(text, refresh=False)
    except KeyboardInterrupt:
        bar.write("cancelled: what was finished stays")
    finally:
        close = getattr(generator, "close", None)
        if close is not None:
            close()
        bar.close()
    return reports


__all__ = ["run"]
