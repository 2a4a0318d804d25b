"""What the Train widget does with a run: the job (``training.job.training_run``: load the
model, build the ``Trainer``, drive ``trainer.run()``), and the reports turned into progress,
plot points and status text. Functions of the widget ``w`` (its controls are in train.py / train_form.py)."""

from __future__ import annotations

from qtpy.QtWidgets import QWidget

from ..layers import labels_of_shape


def job_gen(w, p):
    """The run: ``training.job.training_run`` (load or copy the model, build the trainer, its reports)."""
    from ..training.job import training_run

    name, device = p["key"]
    return (yield from training_run(p["specs"], p["out"], p["config"], model=p["model"], name=name, device=device,
                                    mode=p["mode"], val_slices=p["val_slices"]))


def on_item(w, item):
    from ..training.job import TrainerReady
    from ..training.trainer import EpochReport, StageReport, StepReport

    if isinstance(item, str):
        w.status_label.setText(item)
        return
    if w.models.on_item(item):  # a weights download
        return
    if isinstance(item, TrainerReady):
        tr = w.trainer = item.trainer
        w._run["total"] = tr.total_steps
        w.plot.set_total_steps(tr.total_steps, tr.steps_per_epoch)
        w._run["summary"] = (f"{len(tr.train_samples)} training / {len(tr.val_samples)} validation "
                                f"samples, {tr.total_steps} steps; {tr.model.model_id} on {tr.device}")
        w.status_label.setText(w._run["summary"])
        return
    if isinstance(item, StageReport):
        w.progress_bar.setRange(0, max(item.total, 1))
        w.progress_bar.setValue(item.done)
        w.progress_bar.setFormat(f"{item.stage} %v / %m slices")
        w.status_label.setText(f"{item.stage}: {item.done} / {item.total} slices "
                                  f"(the encoder is frozen: once, then from the cache)")
    elif isinstance(item, StepReport):
        total = w._run["total"]
        if w.progress_bar.maximum() != total:
            w.progress_bar.setRange(0, max(total, 1))
            w.progress_bar.setFormat("%v / %m steps")
        w.progress_bar.setValue(item.step)
        w.plot.add_step(item.step, item.loss)
        w._run["last_step"] = item
        w.status_label.setText(w._status_text())
    elif isinstance(item, EpochReport):
        w.history.append(item)
        w.plot.add_epoch(item.epoch, item.step, item.train_loss, item.val_iou, item.val_dice)
        if item.best:
            w._run["best"] = item
        w._run["stopped"] = item.stopped
        if w.best_checkpoint() is not None:
            w.use_button.setEnabled(True)
        w.status_label.setText(w._status_text())
    w.report.emit(item)


def val_text(w) -> str:
    if not w.history:
        return ""
    last, best = w.history[-1], w._run.get("best")
    if last.val_iou is None:
        return f"epoch {last.epoch}: train loss {last.train_loss:.3f} (no validation slice)"
    text = f"epoch {last.epoch}: val IoU {last.val_iou:.3f}, Dice {last.val_dice:.3f}"
    if best is not None and best.val_iou is not None:
        text += f" (best IoU {best.val_iou:.3f}, epoch {best.epoch})"
    return text


def status_text(w) -> str:
    lines = []
    s = w._run.get("last_step")
    if s is not None:
        lines.append(f"epoch {s.epoch + 1}/{w._run['epochs']} · step {s.step}/{w._run['total']} · "
                     f"loss {s.loss:.3f} · train IoU {s.train_iou:.2f} · lr {s.lr:.1e}")
    val = w._val_text()
    if val:
        lines.append(val)
    return "\n".join(lines)


def on_finished(w, cancelled: bool):
    w.start_button.setEnabled(True)
    w.stop_button.setEnabled(False)
    w.plot.flush()
    if w.progress_bar.maximum() == 0:
        w.progress_bar.setRange(0, 1)
        w.progress_bar.setVisible(False)
    done = len(w.history)
    out = w._run.get("out")
    best = w.best_checkpoint()
    where = f"best.pt: {best}" if best is not None else f"checkpoints in {out}"
    val = w._val_text()
    if w._failed:
        outcome = "failed"
        text = (f"training failed after epoch {w.history[-1].epoch}; {where}" if done
                else "training did not start" if w.trainer is None else "training failed; no checkpoint")
    elif cancelled:
        outcome = "stopped"
        text = (f"stopped in epoch {done + 1}: the checkpoints of epoch {w.history[-1].epoch} stay; {where}"
                if done else "stopped before the first epoch ended: no checkpoint written")
    else:
        outcome = "done"
        why = f"stopped early ({w._run['stopped']})" if w._run.get("stopped") else "done"
        text = f"{why}: {done} epoch{'s' if done != 1 else ''}; {where}"
    w.status_label.setText(text + (f"\n{val}" if val else ""))
    w.use_button.setEnabled(best is not None)
    w.training_finished.emit(outcome)


def find_segment_widget(w):
    from .segment import SegmentWidget

    window = getattr(w.viewer, "window", None)
    if window is None:
        return None
    docked = getattr(window, "dock_widgets", None)
    inner = list(docked.values()) if docked is not None else [
        d.widget() for d in getattr(window, "_dock_widgets", {}).values()]
    for w in inner:
        w = getattr(w, "native", w)
        if isinstance(w, SegmentWidget):
            return w
        if isinstance(w, QWidget):
            found = w.findChildren(SegmentWidget)
            if found:
                return found[0]
    return None


def use_model(w):
    """Load best.pt into the Segment widget (docked now if there is none), with the
    sampling mode it was trained with; returns that widget."""
    from .segment import SegmentWidget

    best = w.best_checkpoint()
    if best is None:
        raise ValueError("no best.pt yet: it is written at the end of the first epoch")
    seg = find_segment_widget(w)
    if seg is None:
        seg = SegmentWidget(w.viewer)
        w.viewer.window.add_dock_widget(seg, name="Segment")
    seg.set_checkpoint(best)
    mode = w._run.get("mode")
    if mode is not None:
        try:
            seg.mode_selector.set_mode(mode)
        except Exception as e:  # noqa: BLE001 - the checkpoint is set; the mode is a courtesy
            w._show_error(f"the Segment widget could not take the sampling mode: {e}")
    from qtpy.QtWidgets import QDockWidget

    dock = seg.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    if dock is not None:
        dock.show()
        dock.raise_()
    w.status_label.setText(f"{best} is the Segment widget's model now")
    return seg


def on_image(w):
    name = w.image_combo.currentText()
    layer = w.viewer.layers[name] if name in w.viewer.layers else None
    if layer is None:
        w.mode_selector.set_arrays({})
        return
    data = layer.data[0] if layer.multiscale else layer.data
    shape = tuple(data.shape)
    w.mode_selector.set_n_slices(shape[0])
    arrays = labels_of_shape(w.viewer.layers, shape)
    w.mode_selector.set_arrays(arrays)
    # the labels layer of this image's shape, when the current one does not fit
    cur = w.labels_combo.currentText()
    if cur not in arrays and arrays:
        w.labels_combo.setCurrentText(next(iter(arrays)))
