"""How every dock widget shows an error: in its red label and as a napari notification,
never raising into Qt."""

from __future__ import annotations

from napari.utils.notifications import show_error


def error_text(exc) -> str:
    """The message people read: our own errors (and ValueError) as they are, anything
    else prefixed with its type (``KeyError: 'x'`` says more than ``'x'``)."""
    if isinstance(exc, str):
        return exc
    msg = str(exc) or repr(exc)
    if isinstance(exc, ValueError) or type(exc).__module__.startswith("napari_scroll_sam"):
        return msg
    return f"{type(exc).__name__}: {msg}"


def show_widget_error(label, exc) -> str:
    msg = error_text(exc)
    label.setText(msg)
    label.show()
    try:
        show_error(msg)
    except Exception:  # noqa: BLE001 - a notification must never take the widget down
        pass
    return msg


def clear_widget_error(label) -> None:
    label.clear()
    label.hide()


def call_or_show(label, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None with the error shown (see ``show_widget_error``)."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - a widget shows errors, it never crashes
        show_widget_error(label, e)
        return None
