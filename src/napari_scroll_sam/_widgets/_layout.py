"""Docks that fit a 1,000 px screen: the content in a scroll area, sections that fold."""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget
from superqt import QCollapsible

#: the shortest a dock gets (it scrolls below that)
MIN_HEIGHT = 120


class _VScrollArea(QScrollArea):
    """Scrolls vertically only: as wide as its content needs, as short as MIN_HEIGHT."""

    def minimumSizeHint(self):  # noqa: N802 - Qt
        w = self.widget()
        width = (w.minimumSizeHint().width() if w is not None else 0) + self.verticalScrollBar().sizeHint().width()
        return QSize(width, MIN_HEIGHT)

    def sizeHint(self):  # noqa: N802 - Qt
        w = self.widget()
        hint = w.sizeHint() if w is not None else QSize(0, 0)
        return QSize(hint.width() + self.verticalScrollBar().sizeHint().width(), min(hint.height(), 900))


def scrolled(owner: QWidget) -> QVBoxLayout:
    """Give ``owner`` a vertical scroll area; returns the layout to fill (inside it)."""
    inner = QWidget()
    lay = QVBoxLayout(inner)
    area = _VScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(inner)
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    owner.scroll_area = area
    return lay


def section(title: str, *widgets, expanded: bool = True) -> QCollapsible:
    """A folding section holding ``widgets`` (QWidgets or layouts)."""
    sec = QCollapsible(title)
    for w in widgets:
        if isinstance(w, QWidget):
            sec.addWidget(w)
        else:
            holder = QWidget()
            holder.setLayout(w)
            sec.addWidget(holder)
    if expanded:
        sec.expand(animate=False)
    else:
        sec.collapse(animate=False)
    return sec


def status_label(color: str | None = None, visible: bool = True) -> QLabel:
    """A wrapping plain-text label that never widens its dock (the text grows downwards)."""
    lbl = QLabel(wordWrap=True, visible=visible)
    if color:
        lbl.setStyleSheet(f"color: {color};")
    lbl.setTextFormat(Qt.TextFormat.PlainText)
    lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return lbl
