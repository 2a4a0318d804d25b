"""Prompt one object on one slice and carry it through the volume — from napari's console.

In napari (Window → Console)::

    %run examples/propagate_console.py            # the built-in synthetic scroll
    %run examples/propagate_console.py scroll.volpkg --model vit_b

The viewer is found with ``napari.current_viewer()`` (``%run`` gives the script its own
globals, so the console's ``viewer`` is not there): the image and the result are added
to it and shown in 3D. Run as a plain script (``python examples/propagate_console.py``)
it works the same without a viewer and prints the reports. Without a volume it uses the
built-in synthetic scroll and scores the result against its ground truth.
"""

import argparse

import numpy as np

import napari_scroll_sam as nss

parser = argparse.ArgumentParser()
parser.add_argument("volume", nargs="?")
parser.add_argument("--model", default="small")
args, _ = parser.parse_known_args()

try:  # napari's console, or any session with a viewer open
    import napari

    viewer = napari.current_viewer()
except ImportError:
    viewer = None

if args.volume:
    vol = nss.open_volume(args.volume)
    truth = None
    z0 = vol.shape[0] // 2
    point = [vol.shape[1] / 2, vol.shape[2] / 2]  # change to a pixel of your object
else:
    image, sheets, ink = nss.scroll_phantom((24, 192, 192), seed=3)
    vol = nss.Volume(levels=[image], contrast_limits=(7000, 40000), name="synthetic scroll")
    z0 = 12
    truth = np.asarray(sheets)
    wrap = int(np.unique(truth[z0])[len(np.unique(truth[z0])) // 2])
    from napari_scroll_sam.prompts import farthest_from_boundary

    point = farthest_from_boundary(truth[z0] == wrap)

model = nss.load_model(args.model)
embedder = nss.SliceEmbedder(model, vol)  # cached on disk: a second run encodes nothing
labels = nss.new_labels(vol.shape)        # numpy, or a zarr array for a huge volume
stop = nss.StopRule(min_pred_iou=0.3, min_slice_iou=0.3, max_area_change=3.0)

reports = nss.run(nss.propagate(embedder, [nss.Seed(1, z0, points=[point])], labels, strategy="skeleton",
                                stop=stop), desc="propagating")
print(f"{len(reports)} slice reports (each: z, area, IoU, source, why a walk stopped)")
for line in nss.walk_summary(reports):  # one line per object
    print(line)

if truth is not None:
    inter = np.logical_and(labels == 1, truth == wrap).sum()
    union = np.logical_or(labels == 1, truth == wrap).sum()
    print(f"wrote {int((labels == 1).sum())} voxels; IoU with the prompted wrap: {inter / union:.3f}")

if viewer is not None:  # show it in 3D, the result on top in a bright colour
    viewer.add_image(vol.layer_data, name=vol.name, contrast_limits=vol.contrast_limits, scale=vol.voxel_size)
    viewer.add_labels(labels, name="propagated", scale=vol.voxel_size)
    viewer.dims.ndisplay = 3
    getattr(viewer, "scene", viewer).camera.angles = (-20.0, 35.0, 60.0)  # oblique, not straight down
    print(f"added {vol.name!r} and 'propagated' to the viewer")
