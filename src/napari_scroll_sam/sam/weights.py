"""Meta's published SAM weights: registry, cache folder, download checked by SHA-256 (pooch)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

from .config import CONFIGS, ModelError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
ENV_CACHE = "NAPARI_SCROLL_SAM_CACHE"
ENV_WEIGHTS_URL = "NAPARI_SCROLL_SAM_WEIGHTS_URL"



# --------------------------------------------------------------------------- weights registry

class Weights(NamedTuple):
    url: str
    sha256: str
    filename: str


WEIGHTS: dict[str, Weights] = {
    "vit_b": Weights(DEFAULT_BASE_URL + "sam_vit_b_01ec64.pth",
                     "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                     "sam_vit_b_01ec64.pth"),
    "vit_l": Weights(DEFAULT_BASE_URL + "sam_vit_l_0b3195.pth",
                     "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                     "sam_vit_l_0b3195.pth"),
    "vit_h": Weights(DEFAULT_BASE_URL + "sam_vit_h_4b8939.pth",
                     "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                     "sam_vit_h_4b8939.pth"),
}


def cache_dir() -> Path:
    """Where downloaded weights go: ``$NAPARI_SCROLL_SAM_CACHE`` or the user cache folder."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-scroll-sam"))


def _known_names() -> str:
    return ", ".join(dict.fromkeys([*CONFIGS, *WEIGHTS]))


def _weights(name: str) -> Weights:
    if name not in WEIGHTS:
        raise ModelError(f"no published weights named {name!r}; known: {', '.join(WEIGHTS)}")
    return Weights(*WEIGHTS[name])


def weights_url(name: str) -> str:
    """The URL ``name``'s weights come from (``$NAPARI_SCROLL_SAM_WEIGHTS_URL`` applied)."""
    entry = _weights(name)
    base = os.environ.get(ENV_WEIGHTS_URL)
    return base.rstrip("/") + "/" + entry.filename if base else entry.url


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(path: Path, sha256: str) -> bool:
    """True when ``path`` was hash-checked before and has not changed since (no re-hash)."""
    try:
        st = path.stat()
        mark = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return False
    return mark == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def download_weights(name: str, cache: str | os.PathLike | None = None,
                     progress: bool | object = True) -> Path:
    """Path of ``name``'s checked weights file in the cache, downloaded if not there yet
    (``progress``: a bar on stderr, or any tqdm-like object pooch can fill)."""
    import pooch

    entry = _weights(name)
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    target = folder / entry.filename
    if _is_verified(target, entry.sha256):
        return target
    url = weights_url(name)
    try:
        got = Path(pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=entry.filename,
                                  path=folder, progressbar=progress))
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise ModelError(f"could not download {name!r} weights from {url}: {exc}") from None
        target.unlink(missing_ok=True)  # a stale file that failed the check too
        raise ModelError(
            f"the download of {entry.filename} from {url} does not have the expected SHA256 "
            f"({entry.sha256[:12]}…); the download was removed and nothing was kept in "
            f"{folder}. The mirror may serve another file, or the transfer was corrupted."
        ) from None
    except Exception as exc:  # noqa: BLE001 — network, permissions
        raise ModelError(
            f"could not download {name!r} weights from {url}: {type(exc).__name__}: {exc}. "
            f"Offline, copy {entry.filename} into {folder}, set {ENV_WEIGHTS_URL} to a mirror, "
            f"or give load_model the checkpoint's path.") from None
    st = got.stat()
    try:
        _marker(got).write_text(json.dumps(
            {"sha256": entry.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    except OSError:
        pass  # read-only cache: it is hash-checked again next time
    return got




# --------------------------------------------------------------------------- download as reports

@dataclasses.dataclass
class DownloadReport:
    """A weights download under way: ``done`` of ``total`` bytes (``total`` 0: not known yet);
    ``finished`` on the last report (also when the download failed)."""

    name: str
    done: int
    total: int
    finished: bool = False


class DownloadCancelled(Exception):
    """Raised in the download's thread (from pooch's progress callback) once the reports are closed."""


class _Counter:
    """What pooch's ``progressbar=`` needs of a progress bar (tqdm's ``total``, ``update``,
    ``reset``, ``close``), read by another thread; ``cancelled`` stops the transfer at its next
    chunk (pooch then drops its temporary file)."""

    def __init__(self):
        self.total, self.n = 0, 0
        self.cancelled = False

    def update(self, k):
        if self.cancelled:
            raise DownloadCancelled("the download was cancelled")
        self.n += int(k)

    def reset(self):
        self.n = 0

    def close(self):
        pass


def download_reports(name: str, cache: str | os.PathLike | None = None, every_s: float = 0.25):
    """``download_weights`` as a report generator (``nss.run`` shows it, the widgets put it in
    napari's progress): a ``DownloadReport`` every ``every_s`` seconds while the file comes,
    nothing when it is in the cache already; returns the file's path (None for a name that is
    not one of ``WEIGHTS``: the built-in model or a file has nothing to download). The transfer runs in a
    thread: closing the generator cancels it at its next chunk (pooch writes under a temporary
    name and drops it, so a later call finds the whole file or none)."""
    import threading

    if not isinstance(name, str) or name not in WEIGHTS:
        return None
    entry = _weights(name)
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    if _is_verified(folder / entry.filename, entry.sha256):
        return folder / entry.filename
    counter, result = _Counter(), {}

    def fetch():
        try:
            result["path"] = download_weights(name, cache, progress=counter)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=fetch, name=f"download {name}", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(every_s)
            if thread.is_alive():
                yield DownloadReport(name, counter.n, counter.total)
    finally:
        if thread.is_alive():  # closed (cancelled) while the file was coming
            counter.cancelled = True
            thread.join(5.0)
    yield DownloadReport(name, counter.n, counter.total, finished=True)
    if "error" in result:
        raise result["error"]
    return result["path"]
