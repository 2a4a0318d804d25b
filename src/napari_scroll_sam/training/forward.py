"""The model's forward as the trainer runs it: a sample's embedding (from the cache, or the
encoder now for an augmented sample or a trained encoder) and batched prompt decoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..sam.precision import bf16_autocast
from ..sam.predictor import _to_sam_xy
from ..sam.preprocess import preprocess, preprocess_shape
from . import data as D
from .augment import augment


class Forward:
    """Mixin of ``Trainer``: needs ``sam``, ``device``, ``embedders``, ``augmentation``,
    ``encoder_trained`` and ``config.min_area``."""

    def _embedding(self, sample: D.Sample) -> torch.Tensor:
        return self._inputs(sample)[0]

    def _inputs(self, sample: D.Sample, rng=None, masks=None) -> tuple[torch.Tensor, np.ndarray]:
        """(embedding (1, C, g, g), object masks (K, h, w)) of a sample, augmented when ``rng``
        is given and augmentation is on (an augmented image is encoded now)."""
        emb = self.embedders[sample.pair]
        aug = self.augmentation is not None and rng is not None and rng.random() < self.augmentation.p
        if not self.encoder_trained and not aug:
            return emb.get(sample.z).tensor[sample.tile][None].detach(), sample.masks if masks is None else masks
        from ..sampling import sample_raw
        from ..sam.preprocess import window_uint8

        tile = emb.tiles[sample.tile]
        y0, y1, x0, x1 = tile.outer
        raw = sample_raw(emb.volume, [sample.z], emb.mode)[:, :, y0:y1, x0:x1]
        masks = sample.masks if masks is None else masks
        if aug:
            img = window_uint8(torch.as_tensor(np.asarray(raw, np.float32)), emb.volume.contrast_limits)[0].numpy()
            img, out = augment(img, masks, rng, dataclasses.replace(self.augmentation, p=1.0))
            keep = out.reshape(len(out), -1).sum(1) >= self.config.min_area
            if not keep.any():  # the crop or warp lost every object: the sample as it is
                return self._inputs(sample, masks=masks)
            masks = out[keep]
            x, _ = preprocess(img[None], None, emb.img_size, self.device, already_uint8=True)
        else:
            x, _ = preprocess(raw, emb.volume.contrast_limits, emb.img_size, self.device)
        with self._autocast(), torch.set_grad_enabled(self.encoder_trained and torch.is_grad_enabled()):
            return self.sam.image_encoder(x).float(), masks

    def _autocast(self):  # bf16 on CUDA and on CPUs with native bf16 (sam/precision.py)
        return bf16_autocast(self.device)

    def _decode(self, emb, size, prompts, mask_input=None, multimask=False):
        """Logits (N, M, h, w) at the tile's resolution, predicted IoU (N, M), low-res logits.
        ``multimask``: False, one mask (SAM's single output); True, three; "all": the four, the
        single output first (one decoder pass for both)."""
        input_size = preprocess_shape(*size, self.sam.image_encoder.img_size)
        k = max(len(p.points) for p in prompts)
        boxes = None
        coords = labels = None
        if k:
            pts = np.zeros((len(prompts), k, 2))
            lab = -np.ones((len(prompts), k))
            for i, p in enumerate(prompts):
                pts[i, : len(p.points)], lab[i, : len(p.points)] = p.points, p.labels
            coords = torch.as_tensor(_to_sam_xy(pts, size, input_size), dtype=torch.float32, device=self.device)
            labels = torch.as_tensor(lab, dtype=torch.int64, device=self.device)
        if prompts[0].box is not None:
            b = np.stack([p.box for p in prompts]).reshape(-1, 2, 2)
            boxes = torch.as_tensor(_to_sam_xy(b, size, input_size).reshape(-1, 4), dtype=torch.float32,
                                    device=self.device)
        with self._autocast():
            sparse, dense = self.sam.prompt_encoder(points=(coords, labels) if k else None, boxes=boxes,
                                                    masks=mask_input)
            kw = dict(image_embeddings=emb, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
            if multimask == "all":
                low, iou = self.sam.mask_decoder.predict_masks(**kw)
            else:
                low, iou = self.sam.mask_decoder(**kw, multimask_output=multimask)
        logits = self.sam.postprocess_masks(low.float(), input_size, tuple(size))
        return logits, iou.float(), low.float()
