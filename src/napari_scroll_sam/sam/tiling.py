"""Slices larger than SAM's input: tiles with a halo, and seamless stitching.

A slice is cut into a grid of *cores* (``tile - 2 * halo`` pixels apart); each
tile is its core plus a halo on every side (shifted inwards at the slice's
edges, so every tile has the full ``tile`` size when the slice is that big).
Each tile is embedded on its own. A prompt goes to the tile whose core holds
it; the mask found there is pasted core by core, and when it reaches into a
neighbour's core the neighbour is prompted with points taken from the mask in
the overlap, until the object stops growing. Inside each core only that tile's
prediction is used, so there is no seam to blend: the halo gives each tile the
context to agree with its neighbour at the core border.

Defaults: ``tile`` = the model's input size (1024 for vit_b/l/h: no resampling),
``halo`` = tile // 8 (128 px). Tiling is used when a slice's longer side exceeds
``1.5 x tile``; smaller slices are resized whole, as SAM does.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Callable

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class Tile:
    index: int
    outer: tuple  # (y0, y1, x0, x1) pixels of the slice that the tile embeds
    core: tuple  # (y0, y1, x0, x1) pixels this tile is responsible for
    grid_pos: tuple  # (row, col)

    @property
    def shape(self) -> tuple:
        return (self.outer[1] - self.outer[0], self.outer[3] - self.outer[2])

    def core_in_tile(self) -> tuple:
        y0, y1, x0, x1 = self.core
        return (slice(y0 - self.outer[0], y1 - self.outer[0]), slice(x0 - self.outer[2], x1 - self.outer[2]))


@dataclasses.dataclass(frozen=True)
class Tiling:
    """Tile size and halo in slice pixels."""

    tile: int = 1024
    halo: int = 128

    def __post_init__(self):
        if self.tile < 16 or not (0 <= self.halo < self.tile // 2):
            raise ValueError(f"tiling: need tile >= 16 and 0 <= halo < tile / 2, got tile={self.tile} halo={self.halo}")

    @classmethod
    def for_model(cls, img_size: int) -> "Tiling":
        return cls(tile=img_size, halo=img_size // 8)

    def needed(self, shape_hw) -> bool:
        return max(shape_hw) > 1.5 * self.tile

    def key(self) -> str:
        return f"tiles(tile={self.tile},halo={self.halo})"

    def grid(self, shape_hw) -> list[Tile]:
        h, w = (int(s) for s in shape_hw)
        stride = self.tile - 2 * self.halo
        rows = _axis(h, self.tile, self.halo, stride)
        cols = _axis(w, self.tile, self.halo, stride)
        tiles = []
        for r, (oy, cy) in enumerate(rows):
            for c, (ox, cx) in enumerate(cols):
                tiles.append(Tile(len(tiles), oy + ox, cy + cx, (r, c)))
        return tiles


def _axis(n, tile, halo, stride):
    """[(outer (a, b), core (a, b))] along one axis.

    Edge tiles need no halo on their outer side, so their cores are ``tile - halo``
    long; inner cores are ``stride`` long; the last core ends at the slice's edge.
    """
    if n <= tile:
        return [((0, n), (0, n))]
    bounds = [0]
    while n - bounds[-1] > tile - halo:  # the rest does not fit in an edge tile's core
        bounds.append(bounds[-1] + (tile - halo if len(bounds) == 1 else stride))
    bounds.append(n)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        o0 = min(max(a - halo, 0), n - tile)
        out.append(((o0, o0 + tile), (a, b)))
    return out


def grid_for(shape_hw, tiling: Tiling | None) -> list[Tile]:
    """The tiles of a slice: one whole-slice tile when no tiling is needed."""
    if tiling is None or not tiling.needed(shape_hw):
        h, w = shape_hw
        return [Tile(0, (0, h, 0, w), (0, h, 0, w), (0, 0))]
    return tiling.grid(shape_hw)


def tile_of(tiles: list[Tile], y: float, x: float) -> Tile:
    """The tile whose core holds (y, x) (nearest core if outside them all)."""
    for t in tiles:
        y0, y1, x0, x1 = t.core
        if y0 <= y < y1 and x0 <= x < x1:
            return t
    return min(tiles, key=lambda t: (np.clip(y, t.core[0], t.core[1] - 1) - y) ** 2
               + (np.clip(x, t.core[2], t.core[3] - 1) - x) ** 2)


def seed_points(mask: np.ndarray, n: int = 3) -> np.ndarray:
    """Up to ``n`` (y, x) points deep inside a mask's components (distance-transform maxima)."""
    if not mask.any():
        return np.zeros((0, 2))
    lab, k = ndimage.label(mask)
    dist = ndimage.distance_transform_edt(mask)
    sizes = ndimage.sum(mask, lab, range(1, k + 1))
    pts = []
    for comp in np.argsort(sizes)[::-1][:n]:
        d = np.where(lab == comp + 1, dist, 0)
        pts.append(np.unravel_index(int(np.argmax(d)), mask.shape))
    return np.asarray(pts, dtype=float)


PredictTile = Callable[[Tile, dict], np.ndarray]


def predict_stitched(predict_tile: PredictTile, tiles: list[Tile], shape_hw, prompt: dict,
                     max_tiles: int = 256) -> np.ndarray:
    """One object's mask over a tiled slice.

    ``prompt`` holds slice coordinates: ``points`` (K, 2) (y, x), ``labels`` (K,),
    and/or ``box`` (y0, x0, y1, x1). ``predict_tile(tile, prompt_in_tile)`` returns
    the tile's (outer-size) bool mask for a prompt in tile coordinates.
    """
    h, w = shape_hw
    out = np.zeros((h, w), bool)
    pts = np.asarray(prompt.get("points", np.zeros((0, 2))), float).reshape(-1, 2)
    labels = np.asarray(prompt.get("labels", np.ones(len(pts))), float)
    box = prompt.get("box")
    pos = pts[labels > 0]
    if len(pos):
        cy, cx = pos.mean(axis=0)
    elif box is not None:
        cy, cx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    else:
        raise ValueError("predict_stitched: the prompt has no positive point and no box")
    by_pos = {t.grid_pos: t for t in tiles}
    first = tile_of(tiles, cy, cx)
    queue = deque([(first, {"points": pts, "labels": labels, "box": box})])
    seen = {first.index}
    while queue and len(seen) <= max_tiles:
        tile, p = queue.popleft()
        oy, ox = tile.outer[0], tile.outer[2]
        local = {"points": p["points"] - [oy, ox], "labels": p["labels"]}
        if p.get("box") is not None:
            b = np.asarray(p["box"], float)
            local["box"] = np.clip(b - [oy, ox, oy, ox], 0, [tile.shape[0] - 1, tile.shape[1] - 1] * 2)
        # keep the points that fall in this tile
        inside = ((local["points"] >= 0) & (local["points"] < tile.shape)).all(axis=1) if len(local["points"]) else []
        local["points"], local["labels"] = local["points"][inside], local["labels"][inside]
        mask = predict_tile(tile, local)
        cs = tile.core_in_tile()
        y0, y1, x0, x1 = tile.core
        out[y0:y1, x0:x1] = mask[cs]
        r, c = tile.grid_pos
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nb = by_pos.get((r + dr, c + dc))
                if nb is None or nb.index in seen:
                    continue
                # the part of this tile's mask that lies in the neighbour's core
                ny0, ny1, nx0, nx1 = nb.core
                a0, a1 = max(ny0, tile.outer[0]), min(ny1, tile.outer[1])
                b0, b1 = max(nx0, tile.outer[2]), min(nx1, tile.outer[3])
                if a0 >= a1 or b0 >= b1:
                    continue
                part = mask[a0 - oy:a1 - oy, b0 - ox:b1 - ox]
                if not part.any():
                    continue
                seeds = seed_points(part) + [a0, b0]
                seen.add(nb.index)
                queue.append((nb, {"points": seeds, "labels": np.ones(len(seeds)), "box": None}))
    return out
