"""Open a volume lazily, crop a region, threshold it, save labels — no Qt needed.

Run as a script (``python examples/open_crop_save.py [PATH]``; without PATH it uses
the built-in synthetic scroll written to a temporary TIFF folder), or paste the
body into napari's console (``viewer`` is defined there) to see the layers.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

import napari_scroll_sam as nss

if len(sys.argv) > 1:
    path = Path(sys.argv[1])
else:  # a small slice folder made from the synthetic scroll
    path = Path(tempfile.mkdtemp()) / "scroll_slices"
    path.mkdir()
    image, sheets, ink = nss.scroll_phantom((32, 256, 256), seed=1)
    for z, sl in enumerate(image.compute()):
        tifffile.imwrite(path / f"{z:05d}.tif", sl)

vol = nss.open_volume(path)  # metadata only
print(vol.describe())

z0, z1 = vol.shape[0] // 4, vol.shape[0] // 4 + 8
roi = vol.crop(z=(z0, z1), y=(vol.shape[1] // 4, 3 * vol.shape[1] // 4), x=(vol.shape[2] // 4, 3 * vol.shape[2] // 4))
print("region of interest:", roi)

lo, hi = roi.contrast_limits
labels = (roi.data > (lo + hi) / 2).astype(np.uint32)  # still lazy
out = nss.write_labels(Path(tempfile.mkdtemp()) / "roi_labels.zarr", labels)
print("wrote", out, "foreground voxels:", int(labels.sum().compute()))

if "viewer" in globals():  # napari console
    viewer.add_image(roi.data, scale=roi.voxel_size, translate=roi.translate,  # noqa: F821
                     contrast_limits=roi.contrast_limits, name=roi.name)
    viewer.add_labels(labels, scale=roi.voxel_size, translate=roi.translate, name="threshold")  # noqa: F821
