"""Prompts → masks on one slice, from a (cached) image embedding.

napari orders coordinates (y, x); SAM wants (x, y). The conversion happens here
and nowhere else (``_to_sam_xy``). Many prompts go through the decoder at once.
"""

from __future__ import annotations
from ..errors import ScrollSamError

import dataclasses

import numpy as np
import torch

from .preprocess import preprocess_shape


#: SAM's four masks for a prompt (``Predictor.predict(output=i)``): the single mask (token 0, what a
#: box, several points or ``multimask=False`` give) and the three of an ambiguous prompt (one click)
OUTPUTS = ("single", "multi 1", "multi 2", "multi 3")


class PromptError(ScrollSamError, ValueError):
    """Prompts that cannot be used: empty, outside the image, badly shaped."""


@dataclasses.dataclass
class Prediction:
    """Masks for N prompts: ``masks`` (N, H, W) bool, ``iou`` (N,) predicted IoU,
    ``logits`` (N, 1, 256, 256) low-resolution logits (feed back as ``mask_input``)."""

    masks: np.ndarray
    iou: np.ndarray
    logits: torch.Tensor

    def __len__(self):
        return len(self.masks)


def _to_sam_xy(yx: np.ndarray, original_size, input_size) -> np.ndarray:
    """napari (…, y, x) pixel coordinates → SAM (…, x, y) in the resized input frame."""
    (oh, ow), (nh, nw) = original_size, input_size
    yx = np.asarray(yx, dtype=np.float64)
    return np.stack([yx[..., 1] * (nw / ow), yx[..., 0] * (nh / oh)], axis=-1)


def _check_inside(coords_yx: np.ndarray, original_size, what: str):
    h, w = original_size
    bad = (coords_yx[..., 0] < -0.5) | (coords_yx[..., 0] > h - 0.5) | (coords_yx[..., 1] < -0.5) | (
        coords_yx[..., 1] > w - 0.5)
    if np.any(bad):
        first = coords_yx[bad][0]
        raise PromptError(f"{what} at (y={first[0]:g}, x={first[1]:g}) is outside the slice of shape {h} x {w}")


class Predictor:
    """Decode prompts against an image embedding with a loaded SAM.

    ``model`` is a ``SamModel`` (``.sam``, ``.device``) or a bare ``Sam``.
    """

    def __init__(self, model):
        self.sam = getattr(model, "sam", model)
        self.device = next(self.sam.parameters()).device

    @property
    def img_size(self) -> int:
        return self.sam.image_encoder.img_size

    @torch.inference_mode()
    def predict(self, embedding: torch.Tensor, original_size, points=None, point_labels=None, boxes=None,
                mask_input=None, multimask: bool = False, output: int | None = None) -> Prediction:
        """Masks for N prompts on one image.

        Parameters
        ----------
        embedding : (C, h, w) or (1, C, h, w) tensor
        original_size : (H, W) of the slice the embedding was made from
        points : (N, K, 2) or (K, 2) array of (y, x); padded entries may carry label -1
        point_labels : (N, K) or (K,) 1 = foreground, 0 = background, -1 = padding
        boxes : (N, 4) or (4,) array (y0, x0, y1, x1)
        mask_input : (N, 1, 256, 256) low-resolution logits from a previous prediction
        multimask : ask SAM for three masks and keep the one it scores best
        output : which of SAM's four masks to give instead (``OUTPUTS``: 0 the single mask, what
            ``multimask=False`` gives; 1-3 the three of an ambiguous prompt, in SAM's order)
        """
        if output is not None and output not in range(len(OUTPUTS)):
            raise PromptError(f"output={output!r} must be one of 0-{len(OUTPUTS) - 1} ({', '.join(OUTPUTS)})")
        original_size = tuple(int(s) for s in original_size)
        input_size = preprocess_shape(*original_size, self.img_size)
        n, coords, labels, box_t = None, None, None, None
        if points is not None:
            pts = np.asarray(points, dtype=np.float64)
            if pts.ndim == 2:
                pts = pts[None]
            lab = np.ones(pts.shape[:2]) if point_labels is None else np.asarray(point_labels, dtype=np.float64)
            if lab.ndim == 1:
                lab = lab[None]
            if pts.ndim != 3 or pts.shape[-1] != 2 or lab.shape != pts.shape[:2]:
                raise PromptError(f"points must be (N, K, 2) with labels (N, K); got {pts.shape} and {lab.shape}")
            if pts.shape[1] == 0:
                pts, lab = None, None
            else:
                _check_inside(pts[lab >= 0], original_size, "point")
                coords = torch.as_tensor(_to_sam_xy(pts, original_size, input_size), dtype=torch.float32,
                                         device=self.device)
                labels = torch.as_tensor(lab, dtype=torch.int64, device=self.device)
                n = pts.shape[0]
        if boxes is not None:
            b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            _check_inside(b.reshape(-1, 2, 2), original_size, "box corner")
            if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
                raise PromptError("boxes must be (y0, x0, y1, x1) with y0 <= y1 and x0 <= x1")
            xy = _to_sam_xy(b.reshape(-1, 2, 2), original_size, input_size).reshape(-1, 4)
            box_t = torch.as_tensor(xy, dtype=torch.float32, device=self.device)
            if n is not None and len(box_t) != n:
                raise PromptError(f"{n} point sets but {len(box_t)} boxes: give one box per prompt")
            n = len(box_t)
        if mask_input is not None:
            mask_input = torch.as_tensor(mask_input, dtype=torch.float32, device=self.device)
            if mask_input.ndim == 3:
                mask_input = mask_input[:, None]
            n = n or len(mask_input)
            if len(mask_input) != n:
                raise PromptError(f"{n} prompts but {len(mask_input)} mask inputs")
        if n is None:
            raise PromptError("no prompt: give points, a box or a mask")

        emb = embedding if embedding.ndim == 4 else embedding[None]
        emb = emb.to(device=self.device, dtype=next(self.sam.mask_decoder.parameters()).dtype)
        sparse, dense = self.sam.prompt_encoder(
            points=(coords, labels) if coords is not None else None, boxes=box_t, masks=mask_input)
        kw = dict(image_embeddings=emb, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                  sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
        if output is not None:  # all four, then the one asked for
            low_res, iou = self.sam.mask_decoder.predict_masks(**kw)
            low_res, iou = low_res[:, output:output + 1], iou[:, output:output + 1]
        else:
            low_res, iou = self.sam.mask_decoder(**kw, multimask_output=multimask)
        if multimask and output is None:
            best = iou.argmax(dim=1)
            idx = torch.arange(len(best), device=best.device)
            low_res, iou = low_res[idx, best][:, None], iou[idx, best][:, None]
        masks = self.sam.postprocess_masks(low_res.float(), input_size, original_size) > self.sam.mask_threshold
        return Prediction(masks[:, 0].cpu().numpy(), iou[:, 0].float().cpu().numpy(), low_res.float())
