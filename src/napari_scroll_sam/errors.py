"""The one base class of the project's errors, so scripts can catch them all::

    try:
        nss.open_volume(path)
    except nss.ScrollSamError as exc:
        print(exc)

Each error names the file / layer / slice and what is wrong. Subclasses keep the
builtin type they had (``ValueError`` for bad input, ``RuntimeError`` for a
failed run) so older ``except ValueError`` code still works.
"""


class ScrollSamError(Exception):
    """Base class of every error this package raises on purpose."""
