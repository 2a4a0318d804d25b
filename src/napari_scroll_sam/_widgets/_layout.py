"""Docks that fit a 1,000 px screen: the content in a scroll area, sections that fold."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget
from superqt import QCollapsible


def scrolled(owner: QWidget) -> QVBoxLayout:
    """Give ``owner`` a vertical scroll area; returns the layout to fill (inside it)."""
    inner = QWidget()
    lay = QVBoxLayout(inner)
    area = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(inner)
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    owner.scroll_area = area
    owner.setMinimumHeight(120)
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
