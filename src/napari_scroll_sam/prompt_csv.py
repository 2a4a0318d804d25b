"""The prompts CSV of ``napari-scroll-sam propagate``: rows → ``Seed``s, every row checked
(finite numbers, box order, labels 0/1, one box per object and slice) and then every seed
against the volume, before the model loads; errors name the file and the line(s)."""

from __future__ import annotations

import csv
import math

import numpy as np

from .propagation import PropagationError, Seed
from .propagation.plan import validate as _validate


def read_prompts(path):
    """Seeds from a CSV with columns object,z,y,x[,label][,y1,x1]: a row with y1/x1 is a
    box (y, x)-(y1, x1); otherwise a point with label 1 (foreground) or 0 (background).
    Rows of one object on one slice make one seed; two boxes there are refused (with
    both line numbers), as is any row that is not finite numbers."""

    rows = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"object", "z", "y", "x"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                if reader.fieldnames and all(_number(v) for v in reader.fieldnames):
                    raise PropagationError(
                        f"{path}, line 1: numbers where the header belongs ({','.join(reader.fieldnames)}); "
                        f"put a header line first naming the columns, e.g. 'object,z,y,x' "
                        f"(columns object,z,y,x[,label][,y1,x1])")
                raise PropagationError(f"{path}: needs columns object,z,y,x[,label][,y1,x1]; "
                                       f"has {reader.fieldnames}")
            for i, row in enumerate(reader, start=2):
                try:
                    key = (int(row["object"]), int(row["z"]))
                    y, x = float(row["y"]), float(row["x"])
                    entry = rows.setdefault(key, {"points": [], "labels": [], "box": None, "lines": []})
                    if row.get("y1") not in (None, "") and row.get("x1") not in (None, ""):
                        if entry["box"] is not None:
                            raise PropagationError(
                                f"{path}, lines {entry['box_line']} and {i}: two boxes for object {key[0]} on "
                                f"slice {key[1]}; give one box per object and slice (use another object id "
                                f"for a second region)")
                        entry["box"], entry["box_line"] = [y, x, float(row["y1"]), float(row["x1"])], i
                        values = entry["box"]
                    else:
                        label = float(row.get("label") or 1)
                        if label not in (0, 1):
                            raise ValueError(f"label {row.get('label')!r} is not 0 (background) or 1")
                        entry["points"].append([y, x])
                        entry["labels"].append(int(label))
                        values = [y, x]
                    if not all(math.isfinite(v) for v in values):
                        raise ValueError(f"non-finite coordinate in {row}")
                    entry["lines"].append(i)
                except (TypeError, ValueError, OverflowError) as exc:
                    if isinstance(exc, PropagationError):
                        raise
                    raise PropagationError(f"{path}, line {i}: {exc}") from None
    except OSError as exc:
        raise PropagationError(f"{path}: cannot read prompts ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise PropagationError(f"{path}: not a text CSV file ({exc})") from None
    if not rows:
        raise PropagationError(f"{path}: no prompts in it")
    seeds = []
    for (o, z), e in sorted(rows.items()):
        try:
            seeds.append(Seed(o, z, points=e["points"] or None, labels=e["labels"] or None, box=e["box"]))
        except PropagationError as exc:
            lines = ", ".join(map(str, e["lines"]))
            raise PropagationError(f"{path}, line{'s' if len(e['lines']) > 1 else ''} {lines}: {exc}") from None
    return seeds, {(o, z): e["lines"] for (o, z), e in rows.items()}


def _number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


class _Shape:
    """Stands in for the labels and the embedder when checking prompts before any loading."""

    def __init__(self, vol, dtype="uint32"):
        self.volume, self.shape, self.dtype = vol, tuple(vol.shape), np.dtype(dtype)


def check_prompts(path, seeds, lines, vol, z_limits):
    """Every prompt checked against the volume before the model loads (line numbers named)."""
    shim = _Shape(vol)
    try:
        _validate(shim, seeds, shim, z_limits, True)
    except PropagationError as exc:
        bad = next((s for s in seeds if f"object {s.object_id} on slice {s.z}:" in str(exc)), None)
        if bad is None:
            raise
        ln = lines.get((bad.object_id, bad.z), [])
        raise PropagationError(f"{path}, line{'s' if len(ln) > 1 else ''} {', '.join(map(str, ln))}: {exc}") from None


def check_strategy(strategy: str) -> None:
    """An unknown prompt strategy would only fail at the first step after the anchors: refuse it now."""
    from .prompts import make_prompt

    try:
        make_prompt(np.ones((3, 3), bool), strategy)
    except ValueError as exc:
        raise PropagationError(f"--strategy: {exc}") from None
