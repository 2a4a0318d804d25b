"""Writers of small test volumes in every format the readers take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_slices(folder: Path, vol: np.ndarray, fmt: str = "{:05d}.tif", meta: dict | None = None) -> Path:
    import tifffile
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, sl in enumerate(vol):
        name = folder / fmt.format(i)
        if name.suffix == ".png":
            Image.fromarray(sl).save(name)
        else:
            tifffile.imwrite(name, sl)
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def write_ome_zarr(path: Path, vol: np.ndarray, levels: int = 3, chunks=(8, 16, 16), zarr_format: int = 2,
                   voxel=(7.91, 7.91, 7.91)) -> Path:
    """An OME-Zarr multiscales pyramid like Vesuvius volumes_zarr_standardized ('/' keys)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    data = vol
    for lvl in range(levels):
        kwargs = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if zarr_format == 2 else {}
        arr = root.create_array(str(lvl), shape=data.shape, chunks=tuple(min(c, n) for c, n in zip(chunks, data.shape)),
                                dtype=data.dtype, **kwargs)
        arr[:] = data
        f = 2**lvl
        datasets.append({"path": str(lvl), "coordinateTransformations": [
            {"type": "scale", "scale": [v * f for v in voxel]}]})
        data = data[::2, ::2, ::2]
    ms = {"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
          "datasets": datasets}
    if zarr_format == 2:
        root.attrs["multiscales"] = [ms]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


def tiny_model(seed: int = 0, img_size: int = 64, name: str = "tiny"):
    """A SAM built small from segment_anything.modeling (random weights, seeded): fast on CPU."""
    import torch

    from napari_scroll_sam.sam import SamConfig, SamModel, build_sam

    cfg = SamConfig(name=name, img_size=img_size, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                    encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=2, prompt_embed_dim=32,
                    decoder_mlp_dim=64, decoder_num_heads=2, iou_head_hidden_dim=32)
    torch.manual_seed(seed)
    sam = build_sam(cfg).eval()
    # random rel-pos tables: SAM initialises them to zero, which would hide attention bugs
    for blk in sam.image_encoder.blocks:
        torch.nn.init.normal_(blk.attn.rel_pos_h, std=0.2)
        torch.nn.init.normal_(blk.attn.rel_pos_w, std=0.2)
    return SamModel(sam=sam, config=cfg, device=torch.device("cpu"), model_id=f"{name}:seed{seed}", source=name)


def squares_arrays(n=6, size=64, seed=0):
    """Bright squares on a dark background: objects 1 and 2 on slices 0..n-2, the last
    slice unlabelled. Returns (image uint8, labels uint32)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(30, 5, (n, size, size)).clip(0, 255).astype(np.uint8)
    labels = np.zeros((n, size, size), np.uint32)
    for z in range(n - 1):
        y, x = rng.integers(4, size // 2 - 4, 2)
        image[z, y:y + 20, x:x + 20] = 200
        labels[z, y:y + 20, x:x + 20] = 1
        image[z, 44:60, 40:60] = 150
        labels[z, 44:60, 40:60] = 2
    return image, labels
