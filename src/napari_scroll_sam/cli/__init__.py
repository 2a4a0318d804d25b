"""The ``napari-scroll-sam`` command: one module per subcommand, each with its ``register``
(the parser) and ``run`` (the work); ``main.py`` builds the parser and maps errors to exit codes.

    napari-scroll-sam demo [--headless] [--model small] [--shape Z Y X] [--seed N] [--out DIR]
    napari-scroll-sam info PATH_OR_URL
    napari-scroll-sam mesh LABELS --out DIR [--objects 1 2 …] [--format ply|obj] [--scene]
    napari-scroll-sam embed VOLUME --model small --mode tuples [--scheduler ADDRESS]
    napari-scroll-sam propagate VOLUME --prompts prompts.csv --model small --out labels.zarr
    napari-scroll-sam train --images IMG --labels LAB [--images … --labels …] --out ckpt/
    napari-scroll-sam evaluate --images IMG --labels LAB --model small --model ckpt/best.pt

``demo`` is the main job on the built-in sample: it generates the synthetic
scroll, prompts one sheet with one point on the middle slice, propagates it
through the volume, prints each slice's IoU against the ground truth, and opens
napari on the result (volume, labels, 3D view). With ``--headless`` (or when
there is no display) it writes the labels (zarr) and a PNG instead.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
