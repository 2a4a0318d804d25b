"""Run a generator job off the GUI thread (napari's ``thread_worker``), or in it.

``Job(gen, on_yield=, on_return=, on_error=, on_finish=)`` drives a generator
object: every yielded item goes to ``on_yield``, the generator's return value
to ``on_return``, an exception to ``on_error``, and at the end ``on_finish(cancelled)``
is called in every case. All callbacks run in the GUI thread. ``cancel()`` stops
the job after the item being produced (the generator is then closed, so its
``finally`` blocks run — e.g. ``SliceEmbedder.embed`` keeps the slices written).

With ``NAPARI_SCROLL_SAM_SYNC=1`` in the environment (read when the job starts)
the generator runs synchronously in the calling thread, the same callbacks in the
same order: tests are deterministic, and ``cancel()`` from ``on_yield`` works.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Generator

ENV_SYNC = "NAPARI_SCROLL_SAM_SYNC"
#: at most this often a job's news reach the layers, status texts and progress bars (texture
#: uploads and progress events are what a walk costs the GUI thread)
REFRESH_EVERY_S = 0.25


def preload_for_training() -> None:
    """Import what the first optimizer imports (``torch._dynamo``, ~0.9 s): done inside a
    training job it holds the GIL in pieces of up to ~250 ms, stalling napari while the job
    starts; the Train widget pays it once, when it is built."""
    import torch._dynamo  # noqa: F401


def warm_activity_panel() -> None:
    """Show (and close) one napari progress bar now. The first one in a window shows the
    activity indicator, which grows the status bar by a pixel: the canvas is resized and the
    whole window repainted inside the ``processEvents`` napari calls there (50-140 ms with
    software GL); paid when the dock is built, not in the first Embed or Propagate job."""
    from napari.utils import progress

    progress(total=0, desc="napari-scroll-sam").close()


def sync_mode() -> bool:
    """Whether jobs run in the GUI thread (``NAPARI_SCROLL_SAM_SYNC`` set to 1 / true / yes)."""
    return os.environ.get(ENV_SYNC, "").strip().lower() in ("1", "true", "yes", "on")


class JobFailed(Exception):
    """Carries a job's exception across the thread (``original``).

    Not a ``RuntimeError`` on purpose: superqt's ``GeneratorWorker`` takes a
    ``RuntimeError`` out of a generator for a deleted worker and drops it silently
    (no ``errored``, no ``finished``), and ``ModelError`` / ``EmbeddingError`` are
    ``RuntimeError``s.
    """

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _drive(gen: Generator):
    """The worker's generator function: ``gen``'s items and return value, errors wrapped."""
    try:
        return (yield from gen)
    except Exception as exc:  # noqa: BLE001 - handed to on_error in the GUI thread
        raise JobFailed(exc) from exc


class Job:
    """One generator job; see the module docstring."""

    def __init__(self, gen: Generator, *, on_yield: Callable[[Any], None] | None = None,
                 on_return: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_finish: Callable[[bool], None] | None = None):
        self.gen = gen
        self.on_yield = on_yield or (lambda item: None)
        self.on_return = on_return or (lambda value: None)
        self.on_error = on_error or (lambda exc: None)
        self.on_finish = on_finish or (lambda cancelled: None)
        self.cancelled = False
        self.running = False
        self.worker = None
        self._pending: deque = deque()
        self._draining = False

    def start(self) -> "Job":
        self.running = True
        if sync_mode():
            self._run_here()
        else:
            self._run_in_thread()
        return self

    def cancel(self) -> None:
        """Stop after the current item (a no-op once the job has finished)."""
        if not self.running:
            return
        self.cancelled = True
        if self.worker is not None:
            self.worker.quit()

    # --- in the GUI thread ----------------------------------------------------------------
    def _run_here(self) -> None:
        try:
            while True:
                try:
                    item = next(self.gen)
                except StopIteration as stop:
                    if not self.cancelled:
                        self.on_return(stop.value)
                    break
                self.on_yield(item)
                if self.cancelled:
                    break
        except Exception as exc:  # noqa: BLE001 - shown by on_error, never raised into Qt
            self.on_error(exc)
        finally:
            self._finish()

    # --- in a thread ------------------------------------------------------------------------
    def _run_in_thread(self) -> None:
        from napari.qt.threading import create_worker

        worker = create_worker(_drive, self.gen, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(lambda item: self._post("yielded", item))
        worker.returned.connect(lambda value: self._post("returned", value))
        worker.errored.connect(lambda exc: self._post("errored", exc))
        worker.finished.connect(lambda: self._post("finished"))
        self.worker = worker
        worker.start()

    # Worker signals are queued here and handled strictly in order, one at a time: napari's
    # progress bars and notifications call QApplication.processEvents(), which would
    # otherwise run the next signal's handler inside the current one (reports out of
    # order, "finished" before the last report was handled).
    def _post(self, kind, payload=None):
        self._pending.append((kind, payload))
        if self._draining:
            return
        self._draining = True
        try:
            while self._pending:
                kind, payload = self._pending.popleft()
                if kind == "yielded":
                    if not self.cancelled:
                        self.on_yield(payload)
                elif kind == "returned":
                    if not self.cancelled:
                        self.on_return(payload)
                elif kind == "errored":
                    self.on_error(payload.original if isinstance(payload, JobFailed) else payload)
                else:
                    self._finish()
        finally:
            self._draining = False

    def _finish(self, *_):
        if not self.running:
            return
        self.running = False
        self.worker = None
        try:
            self.gen.close()  # runs the job's finally blocks (the worker thread is done with it)
        except Exception:  # noqa: BLE001
            pass
        self.on_finish(self.cancelled)
