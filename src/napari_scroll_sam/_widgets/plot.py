"""The Train widget's plot: training loss per step and validation IoU / Dice per epoch,
drawn with QPainter (no plotting library), repainted at most every ``PLOT_INTERVAL_MS``."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

#: how often (ms) the plot repaints at most while reports arrive
PLOT_INTERVAL_MS = 150
#: curve colours (loss, IoU, Dice) on dark themes and on light ones
CURVE_COLORS = {"dark": ("#ff9f43", "#4fc3f7", "#9ccc65"), "light": ("#d35400", "#1565c0", "#2e7d32")}


# --- the plot -------------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 4):
    """(start, stop, ticks): a range covering [lo, hi] on round numbers, about ``n`` steps."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if (hi - lo) / step <= n:
            break
    start, stop = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [start + i * step for i in range(int(round((stop - start) / step)) + 1)]
    return start, stop, ticks


def _tick_label(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step > 0 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1  # 2.5, 0.25
    return f"{v:.{decimals}f}"


class TrainingPlot(QWidget):
    """Training loss per step (top) and validation IoU / Dice per epoch (bottom), on one
    axis counted in epochs. Drawn with QPainter (no plotting library).

    Data (public, for scripts and tests): ``steps``, ``losses`` (one per step); ``epochs``,
    ``epoch_steps``, ``train_loss``, ``val_iou``, ``val_dice`` (one per epoch; ``None`` when
    there was no validation slice). Repaints at most every ``PLOT_INTERVAL_MS``.
    """

    def __init__(self, parent=None, theme: str = "dark"):
        super().__init__(parent)
        self.theme = theme
        self.total_steps, self.steps_per_epoch = 0, 1
        self.clear()
        self.setMinimumHeight(170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._timer = QTimer(self, singleShot=True, interval=PLOT_INTERVAL_MS)
        self._timer.timeout.connect(self.update)

    def clear(self) -> None:
        self.steps, self.losses = [], []
        self.epochs, self.epoch_steps, self.train_loss, self.val_iou, self.val_dice = [], [], [], [], []
        self.total_steps, self.steps_per_epoch = 0, 1
        if hasattr(self, "_timer"):
            self.update()

    def set_total_steps(self, n: int, steps_per_epoch: int = 1) -> None:
        """The run's length: the x axis spans it from the start (in epochs)."""
        self.total_steps, self.steps_per_epoch = int(n), max(1, int(steps_per_epoch))
        self._schedule()

    def add_step(self, step: int, loss: float) -> None:
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self._schedule()

    def add_epoch(self, epoch: int, step: int, train_loss: float, val_iou, val_dice) -> None:
        self.epochs.append(int(epoch))
        self.epoch_steps.append(int(step))
        self.train_loss.append(float(train_loss))
        self.val_iou.append(None if val_iou is None else float(val_iou))
        self.val_dice.append(None if val_dice is None else float(val_dice))
        self._schedule()

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        self.update()

    def flush(self) -> None:
        """Repaint now (the end of a run)."""
        self._timer.stop()
        self.update()

    def _schedule(self):
        if not self._timer.isActive():
            self._timer.start()

    def sizeHint(self):  # noqa: N802 - Qt
        s = super().sizeHint()
        s.setHeight(260)
        return s

    # --- drawing -----------------------------------------------------------------------------------
    def _colors(self):
        try:
            from napari.utils.theme import get_theme

            t = get_theme(self.theme)
            return {k: QColor(getattr(t, k).as_hex()) for k in ("background", "foreground", "primary",
                                                                "secondary", "text", "icon")}
        except Exception:  # noqa: BLE001 - an unknown theme: plain colours
            return {"background": QColor("#23242b"), "foreground": QColor("#2e333e"),
                    "primary": QColor("#424a54"), "secondary": QColor("#565f6c"), "text": QColor("#f0f1f2"),
                    "icon": QColor("#d1d2d4")}

    def paintEvent(self, event):  # noqa: N802 - Qt
        c = self._colors()
        loss_color, iou_color, dice_color = CURVE_COLORS["light" if c["background"].lightness() > 128 else "dark"]
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), c["background"])
        font = QFont(p.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        p.setFont(font)
        fm = p.fontMetrics()
        lh = fm.height()
        left = max(fm.horizontalAdvance("0.000"), fm.horizontalAdvance("epoch") + 8) + 10
        right, top, bottom = 10, lh + 4, lh + 6
        w, h = self.width() - left - right, self.height() - top - bottom
        if w < 40 or h < 60:
            p.end()
            return
        gap = lh + 8  # room for the lower panel's title
        h1 = int((h - gap) * 0.55)
        loss_rect = QRectF(left, top, w, h1)
        val_rect = QRectF(left, top + h1 + gap, w, h - h1 - gap)
        # the x axis counts epochs: a step's loss sits at step / steps_per_epoch, an epoch's
        # validation at its end (an integer)
        per = max(self.steps_per_epoch, 1)
        xmax = max(self.total_steps / per, (self.steps[-1] / per) if self.steps else 0, 1)
        _, _, xticks = _nice_ticks(0, xmax, 6)
        xticks = [t for t in xticks if t <= xmax + 1e-9 and float(t).is_integer()]

        def xpos(rect, step):  # a few pixels kept free on the right: the last markers show whole
            return rect.left() + (step / per) / xmax * (rect.width() - 5)

        for rect in (loss_rect, val_rect):
            p.fillRect(rect, c["foreground"])
        text_pen = QPen(c["text"])
        hint = QColor(c["icon"])
        hint.setAlpha(170)
        grid_pen = QPen(c["primary"], 1)
        # ticks under the lower panel, grid lines in both
        axis_label = "epoch"  # left of the tick labels, under the y axis' labels
        axis_right = 2 + fm.horizontalAdvance(axis_label)
        for t in xticks:
            x = xpos(val_rect, t * per)
            p.setPen(grid_pen)
            for rect in (loss_rect, val_rect):
                p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            label = f"{int(t)}"
            lx = x - fm.horizontalAdvance(label) / 2
            if lx > axis_right + 4:  # never over the axis label
                p.setPen(text_pen)
                p.drawText(QPointF(min(lx, self.width() - fm.horizontalAdvance(label) - 1),
                                   val_rect.bottom() + fm.ascent() + 3), label)
        p.setPen(QPen(c["icon"]))
        p.drawText(QPointF(2, val_rect.bottom() + fm.ascent() + 3), axis_label)

        # --- loss ---
        p.setPen(text_pen)
        p.drawText(QPointF(left, top - 4), "training loss (per step)")
        if self.losses:
            lo, hi = min(self.losses), max(self.losses)
            y0, y1, yticks = _nice_ticks(lo, hi, 3)
        else:
            y0, y1, yticks = 0.0, 1.0, [0.0, 0.5, 1.0]
        ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0

        def ypos(rect, v, lo, hi):
            return rect.bottom() - (v - lo) / (hi - lo) * rect.height()

        for t in yticks:
            y = ypos(loss_rect, t, y0, y1)
            p.setPen(grid_pen)
            p.drawLine(QPointF(loss_rect.left(), y), QPointF(loss_rect.right(), y))
            p.setPen(text_pen)
            label = _tick_label(t, ystep)
            p.drawText(QPointF(left - 4 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1), label)
        if self.losses:
            p.save()
            p.setClipRect(loss_rect.adjusted(-3, -3, 3, 3))
            pts = [QPointF(xpos(loss_rect, s), ypos(loss_rect, v, y0, y1)) for s, v in zip(self.steps, self.losses)]
            raw = QColor(loss_color)
            many = len(pts) > 20
            if many:  # the raw curve faint, a moving average on top
                raw.setAlpha(90)
            self._polyline(p, pts, QPen(raw, 1.2 if many else 2))
            if many:
                k = max(2, len(self.losses) // 20)
                smooth = np.convolve(self.losses, np.ones(k) / k, mode="valid")
                sp = [QPointF(xpos(loss_rect, s), ypos(loss_rect, v, y0, y1))
                      for s, v in zip(self.steps[k - 1:], smooth)]
                self._polyline(p, sp, QPen(QColor(loss_color), 2.2))
            else:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(loss_color))
                for q in pts:
                    p.drawEllipse(q, 2.5, 2.5)
            p.restore()
            last = f"{self.losses[-1]:.3f}"
            p.setPen(QPen(QColor(loss_color)))
            p.drawText(QPointF(loss_rect.right() - fm.horizontalAdvance(last) - 4, loss_rect.top() - 4), last)
        else:
            p.setPen(QPen(hint))
            p.drawText(loss_rect, Qt.AlignmentFlag.AlignCenter, "the loss appears here once training starts")

        # --- validation ---
        p.setPen(text_pen)
        title = "validation (per epoch)"
        p.drawText(QPointF(left, val_rect.top() - 4), title)
        lx = left + fm.horizontalAdvance(title) + 14
        for name, color in (("IoU", iou_color), ("Dice", dice_color)):
            p.setPen(QPen(QColor(color), 2.2))
            yy = val_rect.top() - 4 - fm.ascent() / 2 + 1
            p.drawLine(QPointF(lx, yy), QPointF(lx + 14, yy))
            p.setPen(text_pen)
            p.drawText(QPointF(lx + 18, val_rect.top() - 4), name)
            lx += 18 + fm.horizontalAdvance(name) + 12
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = ypos(val_rect, t, 0, 1)
            p.setPen(grid_pen)
            p.drawLine(QPointF(val_rect.left(), y), QPointF(val_rect.right(), y))
            if t in (0.0, 0.5, 1.0):
                p.setPen(text_pen)
                label = f"{t:.1f}"
                p.drawText(QPointF(left - 4 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1), label)
        have_val = any(v is not None for v in self.val_iou)
        if have_val:
            for values, color, square in ((self.val_dice, dice_color, True), (self.val_iou, iou_color, False)):
                pts = [QPointF(xpos(val_rect, s), ypos(val_rect, min(max(v, 0.0), 1.0), 0, 1))
                       for s, v in zip(self.epoch_steps, values) if v is not None]
                self._polyline(p, pts, QPen(QColor(color), 2))
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(color))
                for q in pts:
                    if square:
                        p.drawRect(QRectF(q.x() - 3, q.y() - 3, 6, 6))
                    else:
                        p.drawEllipse(q, 3.5, 3.5)
            last = next(v for v in reversed(self.val_iou) if v is not None)
            text = f"IoU {last:.3f}"
            p.setPen(QPen(QColor(iou_color)))
            p.drawText(QPointF(val_rect.right() - fm.horizontalAdvance(text) - 4, val_rect.top() - 4), text)
        else:
            p.setPen(QPen(hint))
            msg = ("no validation slice: the best epoch is the one of lowest loss" if self.epochs
                   else "validation scores appear at each epoch's end")
            p.drawText(val_rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, msg)
        p.end()

    @staticmethod
    def _polyline(p: QPainter, pts, pen):
        if len(pts) < 2:
            return
        path = QPainterPath(pts[0])
        for q in pts[1:]:
            path.lineTo(q)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(path)


# --- the widget ------------------------------------------------------------------------------------------


__all__ = ["TrainingPlot", "PLOT_INTERVAL_MS", "CURVE_COLORS"]
