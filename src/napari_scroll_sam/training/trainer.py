"""Fine-tune SAM on annotated slices.

Default recipe: image encoder and prompt encoder frozen, mask decoder trained with
focal + Dice + IoU-prediction MSE (``losses``), prompts sampled from the labels at
every step (``data.sample_prompt``), plus corrective rounds (a click in the error
regions with the previous logits as mask input). With the encoder frozen the
embeddings come from the embedding cache, so an epoch costs only the decoder,
and every object of a slice goes through the decoder in one call.

Schedules are in epochs, so they fit a set of 10 slices as well as 10,000: warm-up
(``warmup_epochs``) then cosine, early stopping after ``patience`` epochs without a
better validation score, never before ``min_steps`` steps nor before warm-up ends.
Augmentation (``augment``, ``training.augment``) is on by default: an augmented sample
is re-encoded (without gradient when the encoder is frozen). Validation holds out whole
slices and scores them with the ceiling prompts (true box, deepest click); when it rests
on fewer than ``min_val_slices`` slices ``Trainer.validation_warning`` says so (and it is
logged as a warning). Where a pair names its training ``slices`` and its labels hold more
labelled slices, those others are the validation.

``Trainer.run()`` is a generator of reports (``StageReport`` while embedding,
``StepReport`` per step, ``EpochReport`` per epoch with validation IoU / Dice);
close it to cancel. Checkpoints (``last.pt`` each epoch, ``best.pt`` on a new best
validation score) are written atomically and hold model, optimizer, config,
sampling mode, window, step and best score; ``Trainer(resume=path)`` continues.
"""

from __future__ import annotations
from ..errors import ScrollSamError

import dataclasses
import logging
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..sam.checkpoint import read_checkpoint, save_checkpoint
from ..sam.embeddings import SliceEmbedder
from ..sam.predictor import _to_sam_xy
from ..sam.preprocess import preprocess, preprocess_shape
from . import data as D
from .augment import AugmentConfig, augment
from .losses import mask_iou, sam_loss

log = logging.getLogger(__name__)


class TrainingError(ScrollSamError, ValueError):
    """Training cannot start (bad data, output folder, checkpoint); says why."""


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0  # linear warm-up, in epochs (the unit of patience)
    warmup_steps: int | None = None  # or in steps, when given (overrides warmup_epochs)
    batch_size: int = 4  # samples (slices, or tiles of large slices) per step
    objects_per_sample: int = 8
    prompt_kinds: tuple = ("point", "box", "background")
    corrective_rounds: int = 1
    freeze: str = "encoder"  # "encoder": image+prompt encoders frozen; "none"; "last:N" encoder blocks trained
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.2
    patience: int = 5  # epochs without a better validation score before stopping (0: never)
    min_steps: int = 100  # early stopping never fires before this many steps (nor during warm-up)
    min_val_slices: int = 3  # fewer held-out slices than this: validation_warning
    augment: bool = True
    augmentation: AugmentConfig | None = None  # None: AugmentConfig() defaults
    min_area: int = 16
    loss: str = "focal"  # "focal" (SAM's recipe) or "bce" (from scratch); + Dice + IoU MSE both

    def __post_init__(self):
        if not (self.freeze in ("encoder", "none") or (self.freeze.startswith("last:")
                                                       and self.freeze[5:].isdigit())):
            raise TrainingError(f"freeze must be 'encoder', 'none' or 'last:N', not {self.freeze!r}")
        for name in ("epochs", "batch_size", "objects_per_sample"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name} must be >= 1")
        if self.loss not in ("focal", "bce"):
            raise TrainingError(f"loss must be 'focal' or 'bce', not {self.loss!r}")
        if self.warmup_epochs < 0 or (self.warmup_steps is not None and self.warmup_steps < 0):
            raise TrainingError("warm-up must be >= 0")
        if self.min_steps < 0 or self.patience < 0:
            raise TrainingError("min_steps and patience must be >= 0")
        if self.augmentation is not None and not isinstance(self.augmentation, AugmentConfig):
            raise TrainingError(f"augmentation must be an AugmentConfig, not {type(self.augmentation).__name__}")
        bad = [k for k in self.prompt_kinds if k not in D.PROMPT_KINDS]
        if bad:
            raise TrainingError(f"unknown prompt kinds {bad}; use {', '.join(D.PROMPT_KINDS)}")


@dataclasses.dataclass
class StageReport:
    stage: str
    done: int
    total: int


@dataclasses.dataclass
class StepReport:
    step: int
    epoch: int
    loss: float
    parts: dict
    lr: float
    train_iou: float


@dataclasses.dataclass
class EpochReport:
    epoch: int
    step: int
    train_loss: float
    val_iou: float | None
    val_dice: float | None
    best: bool
    checkpoint: str
    stopped: str | None = None
    val_box: float | None = None  # ceiling: each held-out object prompted with its true box
    val_click: float | None = None  # … and with one click at its deepest point
    val_slices: int = 0  # how many held-out slices the validation rests on


class Trainer:
    """Fine-tune ``model`` (a SamModel) on ``pairs`` (``data.TrainingPair``); see the module doc."""

    def __init__(self, model, pairs, out_dir, config: TrainConfig | None = None, mode=None, cache=None,
                 val_slices: dict | None = None, resume=None):
        self.model, self.config = model, config or TrainConfig()
        self.pairs = list(pairs)
        if not self.pairs:
            raise TrainingError("no training data: give at least one (image, labels) pair")
        self.out_dir = Path(out_dir)
        self._check_out_dir()
        self.slices = [D.check_pair(p) for p in self.pairs]
        self.mode = mode
        cfg = self.config
        self.embedders = [SliceEmbedder(model, p.image, mode=mode, cache=cache) for p in self.pairs]
        self.train_slices, self.val_slices = [], []
        for i, zs in enumerate(self.slices):
            given = None if val_slices is None else val_slices.get(i)
            extra = self._other_labelled(self.pairs[i], zs) if given is None else []
            if extra:  # the pair names its training slices: validate on the other labelled ones
                tr, va = zs, extra
            else:
                tr, va = D.split_slices(zs, cfg.val_fraction, cfg.seed + i, given)
            self.train_slices.append(tr)
            self.val_slices.append(va)
        self.train_samples = D.build_samples(self.pairs, self.embedders, self.train_slices, cfg.min_area)
        self.val_samples = D.build_samples(self.pairs, self.embedders, self.val_slices, cfg.min_area)
        if not self.train_samples:
            raise TrainingError(f"no object of at least {cfg.min_area} px on the training slices")
        self.sam = model.sam
        self.device = model.device
        self._set_trainable()
        params = [p for p in self.sam.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_samples) / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup_steps = (cfg.warmup_steps if cfg.warmup_steps is not None
                             else int(round(cfg.warmup_epochs * self.steps_per_epoch)))
        self.augmentation = (cfg.augmentation or AugmentConfig()) if cfg.augment else None
        n_val = sum(len(v) for v in self.val_slices)
        self.validation_warning = None
        if n_val < cfg.min_val_slices:
            self.validation_warning = (
                f"validation rests on {n_val} held-out slice{'s' * (n_val != 1)} "
                f"({len(self.val_samples)} samples): too few to trust; annotate more slices or hold out "
                f"at least {cfg.min_val_slices}" if n_val else
                "no validation: nothing is held out, so best.pt follows the training loss")
            log.warning(self.validation_warning)
        self.step, self.epoch, self.best_score, self.history = 0, 0, -1.0, []
        if resume is not None:
            self._resume(resume)

    # --- set-up ---------------------------------------------------------------
    def _check_out_dir(self):
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"{self.out_dir}: cannot create the output folder ({exc})") from exc
        from ..io.atomic import WriteError, check_writable

        try:  # a probe file: permission bits mislead root and read-only mounts
            check_writable(self.out_dir, f"{self.out_dir}: the output folder")
        except WriteError as exc:
            raise TrainingError(str(exc)) from None

    def _set_trainable(self):
        freeze = self.config.freeze
        for p in self.sam.parameters():
            p.requires_grad = False
        for p in self.sam.mask_decoder.parameters():
            p.requires_grad = True
        if freeze == "none":
            for p in self.sam.parameters():
                p.requires_grad = True
        elif freeze.startswith("last:"):
            n = int(freeze[5:])
            for blk in list(self.sam.image_encoder.blocks)[-n:] if n else []:
                for p in blk.parameters():
                    p.requires_grad = True
            for p in self.sam.image_encoder.neck.parameters():
                p.requires_grad = True
        self.encoder_trained = freeze != "encoder"

    @staticmethod
    def _other_labelled(pair, zs) -> list[int]:
        """Labelled slices of a pair that names its training ``slices``, besides those."""
        if pair.slices is None:
            return []
        import dask.array as da

        lab = pair.labels if isinstance(pair.labels, da.Array) else da.from_array(pair.labels, chunks=(1, -1, -1))
        labelled = [int(z) for z in np.nonzero(lab.any(axis=(1, 2)).compute())[0]]
        return sorted(set(labelled) - set(zs))

    def _resume(self, path):
        ck = read_checkpoint(path)
        if ck["config"]._structure() != self.model.config._structure():
            raise TrainingError(f"{path}: a checkpoint of another model ({ck['config'].describe()}) "
                                f"cannot resume training of {self.model.config.describe()}")
        self.sam.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
        ex = ck["extra"]
        if "optimizer" in ex:
            self.optimizer.load_state_dict(ex["optimizer"])
        self.step, self.epoch = int(ex.get("step", 0)), int(ex.get("epoch", 0))
        self.best_score = float(ex.get("best_score", -1.0))
        self.history = list(ex.get("history", []))

    def lr_at(self, step: int) -> float:
        cfg = self.config
        warm = self.warmup_steps
        if step < warm:
            return cfg.lr * (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    # --- the model's forward ------------------------------------------------
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

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    def _decode(self, emb, size, prompts, mask_input=None, multimask=False):
        """Logits (N, M, h, w) at the tile's resolution, predicted IoU (N, M), low-res logits."""
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
            low, iou = self.sam.mask_decoder(image_embeddings=emb, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                                             sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                             multimask_output=multimask)
        logits = self.sam.postprocess_masks(low.float(), input_size, tuple(size))
        return logits, iou.float(), low.float()

    # --- one step -------------------------------------------------------------
    def _sample_loss(self, sample, rng):
        cfg = self.config
        masks = sample.masks
        if len(masks) > cfg.objects_per_sample:
            masks = masks[rng.choice(len(masks), cfg.objects_per_sample, replace=False)]
        emb, masks = self._inputs(sample, rng, masks)
        size = masks.shape[1:]
        union = masks.any(0)
        prompts = [D.sample_prompt(m, rng, cfg.prompt_kinds, others=union & ~m) for m in masks]
        gt = torch.as_tensor(masks, dtype=torch.float32, device=self.device)
        total, parts_sum, ious, n_terms = 0.0, {}, [], 0
        groups = {}
        for i, p in enumerate(prompts):  # one decoder call per prompt kind (box or not)
            groups.setdefault(p.box is not None, []).append(i)
        for idx in groups.values():
            group = [prompts[i] for i in idx]
            single = all(p.box is None and (p.labels > 0).sum() == 1 for p in group)
            logits, iou_pred, low = self._decode(emb, size, group, multimask=single)
            loss, parts, best, true_iou = sam_loss(logits, iou_pred, gt[idx], cfg.loss)
            total, n_terms = total + loss, n_terms + 1
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            ious.extend(true_iou.tolist())
            for _ in range(cfg.corrective_rounds):
                sel = torch.arange(len(idx), device=self.device)
                pred = (logits[sel, best] > 0).detach().cpu().numpy()
                new = []
                for j, p in enumerate(group):
                    cp, cl = D.corrective_points(pred[j], masks[idx[j]])
                    new.append(type(p)(np.concatenate([p.points, cp]), np.concatenate([p.labels, cl]), p.box))
                group = new
                mask_in = low[sel, best][:, None].detach()
                logits, iou_pred, low = self._decode(emb, size, group, mask_input=mask_in)
                loss, _, best, true_iou = sam_loss(logits, iou_pred, gt[idx], cfg.loss)
                total, n_terms = total + loss, n_terms + 1
        return total / n_terms, {k: v / len(groups) for k, v in parts_sum.items()}, float(np.mean(ious))

    def _train_step(self, batch, rng) -> StepReport:
        self.sam.train()
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        losses, parts, ious = [], {}, []
        for sample in batch:
            loss, p, iou = self._sample_loss(sample, rng)
            (loss / len(batch)).backward()
            losses.append(loss.item())
            ious.append(iou)
            for k, v in p.items():
                parts[k] = parts.get(k, 0.0) + v / len(batch)
        params = [p for p in self.sam.parameters() if p.requires_grad]
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        return StepReport(self.step, self.epoch, float(np.mean(losses)), parts, self.optimizer.param_groups[0]["lr"],
                          float(np.mean(ious)))

    # --- validation -------------------------------------------------------------
    @torch.no_grad()
    def validate(self, samples=None) -> tuple[float | None, float | None]:
        """Mean IoU and Dice over the validation objects, prompted with the deepest point
        (best of SAM's three masks by predicted IoU) and with the tight box; the two apart
        (the ceiling figures) land in ``last_validation`` {"box", "click"}."""
        from .. import prompts as P

        samples = self.val_samples if samples is None else samples
        self.last_validation = {"box": None, "click": None}
        if not samples:
            return None, None
        self.sam.eval()
        ious, dices, per = [], [], {"point": [], "box": []}
        for s in samples:
            emb = self._embedding(s)
            size = s.masks.shape[1:]
            gt = torch.as_tensor(s.masks, dtype=torch.float32, device=self.device)
            for kind in ("point", "box"):
                prompts = [P.Prompt(P.farthest_from_boundary(m)[None], np.ones(1)) if kind == "point"
                           else P.Prompt(np.zeros((0, 2)), np.zeros(0), P.bbox(m)) for m in s.masks]
                logits, iou_pred, _ = self._decode(emb, size, prompts, multimask=kind == "point")
                pick = iou_pred.argmax(1)
                chosen = logits[torch.arange(len(pick)), pick]
                ious.extend(mask_iou(chosen, gt).tolist())
                per[kind].extend(mask_iou(chosen, gt).tolist())
                pred = (chosen > 0).float()
                inter = (pred * gt).flatten(1).sum(1)
                dices.extend(((2 * inter + 1e-6) / (pred.flatten(1).sum(1) + gt.flatten(1).sum(1) + 1e-6)).tolist())
        self.last_validation = {"box": float(np.mean(per["box"])), "click": float(np.mean(per["point"]))}
        return float(np.mean(ious)), float(np.mean(dices))

    # --- the loop -----------------------------------------------------------------
    def save(self, name: str = "last.pt") -> Path:
        """Write a checkpoint now (e.g. at a time limit mid-epoch); ``resume`` continues from it."""
        return self._save(name)

    def _save(self, name) -> Path:
        first = self.pairs[0].image
        path = self.out_dir / name
        try:
            return save_checkpoint(
                path, self.model, optimizer=self.optimizer.state_dict(), step=self.step,
                epoch=self.epoch, best_score=self.best_score, history=self.history,
                sampling=self.embedders[0].mode.key(), window=list(first.contrast_limits),
                train_config=dataclasses.asdict(self.config))
        except OSError as exc:  # full or read-only disk: the previous file is whole (written atomically)
            from ..io.atomic import describe_os_error

            raise TrainingError(f"{path}: cannot write the checkpoint of epoch {self.epoch} "
                                f"({describe_os_error(exc)}); {'the previous ' + name + ' is untouched' if path.exists() else 'none was written'}"
                                ) from exc

    def run(self) -> Iterator:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if not self.encoder_trained:  # embeddings once, from the cache when there
            needed = [(i, sorted({s.z for s in self.train_samples + self.val_samples if s.pair == i}))
                      for i in range(len(self.pairs))]
            total = sum(len(zs) for _, zs in needed)
            done = 0
            for i, zs in needed:
                for _ in self.embedders[i].embed(zs):
                    done += 1
                    yield StageReport("embedding", done, total)
                self.embedders[i]._memory_slices = max(self.embedders[i]._memory_slices, len(zs))
        bad_epochs = 0
        while self.epoch < cfg.epochs:
            rng = np.random.default_rng([cfg.seed, self.epoch])
            order = rng.permutation(len(self.train_samples))
            losses = []
            done = self.step - self.epoch * self.steps_per_epoch  # resumed mid-epoch: skip what was done
            skip = done * cfg.batch_size if 0 < done < self.steps_per_epoch else 0
            for b in range(skip, len(order), cfg.batch_size):
                batch = [self.train_samples[i] for i in order[b:b + cfg.batch_size]]
                rep = self._train_step(batch, rng)
                losses.append(rep.loss)
                yield rep
            self.epoch += 1
            val_iou, val_dice = self.validate()
            score = val_iou if val_iou is not None else -float(np.mean(losses))
            best = score > self.best_score
            if best:
                self.best_score, bad_epochs = score, 0
            else:
                bad_epochs += 1
            self.history.append({"epoch": self.epoch, "step": self.step, "train_loss": float(np.mean(losses)),
                                 "val_iou": val_iou, "val_dice": val_dice,
                                 **{f"val_{k}": v for k, v in getattr(self, "last_validation", {}).items()}})
            last = self._save("last.pt")
            if best:
                self._save("best.pt")
            stopped = None
            if (cfg.patience and bad_epochs >= cfg.patience and self.epoch < cfg.epochs
                    and self.step >= max(cfg.min_steps, self.warmup_steps)):
                stopped = f"no better validation score for {bad_epochs} epochs"
            lv = getattr(self, "last_validation", {})
            yield EpochReport(self.epoch, self.step, float(np.mean(losses)) if losses else float("nan"), val_iou,
                              val_dice, best, str(last), stopped, lv.get("box"), lv.get("click"),
                              sum(len(v) for v in self.val_slices))
            if stopped:
                return
