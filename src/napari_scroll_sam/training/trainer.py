"""Fine-tune SAM on annotated slices.

Default recipe (measured: ``benchmarks/finetune_compare.py``): the mask decoder, the image
encoder's neck and its last 2 blocks trained (``freeze="last:2"``), the rest frozen, with
focal + Dice + IoU-prediction MSE (``losses``), prompts sampled from the labels at
every step (``data.sample_prompt``), plus corrective rounds (a click in the error
regions with the previous logits as mask input); every object of a slice goes through
the decoder in one call. ``freeze="encoder"`` trains the decoder only: the embeddings
then come from the embedding cache, so an epoch without augmentation costs only the
decoder. ``"last:N"`` trains the last N encoder blocks, ``"none"`` everything, ``"lora:R"``
rank-R low-rank adapters on the encoder's attention (``training.lora``; folded into the
weights when the run ends).

The parts: ``config`` (TrainConfig, the reports), ``forward`` (embeddings, decoding),
``schedule`` (warm-up + cosine, early stopping), ``validation`` (the held-out ceiling),
``checkpoints`` (output folder, save, resume); this module is the loop.

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
close it to cancel. ``request_stop()`` (thread-safe: the widget's Stop) ends the run at the next
sample of the current step, dropping that step (a step of a few slices may take many seconds on
a CPU). Checkpoints (``last.pt`` each epoch, ``best.pt`` on a new best
validation score) are written atomically and hold model, optimizer, config,
sampling mode, window, step and best score; ``Trainer(resume=path)`` continues.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..sam.embeddings import SliceEmbedder
from . import checkpoints, schedule, validation
from . import data as D
from .augment import AugmentConfig
from .config import EpochReport, StageReport, StepReport, TrainConfig, TrainingError
from .forward import Forward
from .losses import sam_loss

__all__ = ["Trainer", "TrainConfig", "TrainingError", "StageReport", "StepReport", "EpochReport"]

log = logging.getLogger(__name__)


class Trainer(Forward):
    """Fine-tune ``model`` (a SamModel) on ``pairs`` (``data.TrainingPair``); see the module doc."""

    def __init__(self, model, pairs, out_dir, config: TrainConfig | None = None, mode=None, cache=None,
                 val_slices: dict | None = None, resume=None):
        self.model, self.config = model, config or TrainConfig()
        self._stop = threading.Event()
        self.pairs = list(pairs)
        if not self.pairs:
            raise TrainingError("no training data: give at least one (image, labels) pair")
        self.out_dir = Path(out_dir)
        checkpoints.check_out_dir(self.out_dir)
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
        self.validation_warning = validation.too_few_warning(sum(len(v) for v in self.val_slices),
                                                             len(self.val_samples), cfg.min_val_slices)
        if self.validation_warning:
            log.warning(self.validation_warning)
        self.step, self.epoch, self.best_score, self.history = 0, 0, -1.0, []
        self.last_validation = {"box": None, "click": None}
        if resume is not None:
            checkpoints.resume(self, resume)

    # --- set-up ---------------------------------------------------------------
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
        elif freeze.startswith("lora:"):
            from .lora import add_lora, has_lora, merge_lora

            if has_lora(self.sam):  # another Trainer's whose run has not ended: its update into the weights
                merge_lora(self.sam)
            for a in add_lora(self.sam, int(freeze[5:]), seed=self.config.seed):
                a.A.requires_grad = a.B.requires_grad = True
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

    def lr_at(self, step: int) -> float:
        return schedule.lr_at(step, self.config.lr, self.warmup_steps, self.total_steps)

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
            if single and cfg.single_mask_clicks:  # the three masks, and the single one a click shows
                logits, iou_pred, low = self._decode(emb, size, group, multimask="all")
                one, _, _, _ = sam_loss(logits[:, :1], iou_pred[:, :1], gt[idx], cfg.loss)
                total, n_terms = total + one, n_terms + 1
                logits, iou_pred, low = logits[:, 1:], iou_pred[:, 1:], low[:, 1:]
            else:
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
            if self._stop.is_set():  # stopped mid-step: the step is dropped, the weights untouched
                self.optimizer.zero_grad(set_to_none=True)
                raise _Dropped
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

    def request_stop(self) -> None:
        """End the run at the next sample of the current step (that step is dropped; the last
        finished epoch's checkpoints stay). Safe from another thread."""
        self._stop.set()

    # --- validation and checkpoints ----------------------------------------------
    def validate(self, samples=None) -> tuple[float | None, float | None]:
        """Mean IoU and Dice over the validation objects, prompted with the deepest point
        (best of SAM's three masks by predicted IoU) and with the tight box; the two apart
        (the ceiling figures) land in ``last_validation`` {"box", "click"}."""
        scores, self.last_validation = validation.validate(self, self.val_samples if samples is None else samples)
        return scores

    def save(self, name: str = "last.pt") -> Path:
        """Write a checkpoint now (e.g. at a time limit mid-epoch); ``resume`` continues from it."""
        return checkpoints.save(self, name)

    # --- the loop -----------------------------------------------------------------
    def run(self) -> Iterator:
        """The training loop (see the module doc). With ``freeze="lora:R"`` the adapters are
        folded into the model's weights when it ends (finished, stopped or closed), so the
        model is the plain architecture again; such a Trainer runs once."""
        from .lora import has_lora, merge_lora

        lora = self.config.freeze.startswith("lora:")
        if lora and not has_lora(self.sam):
            raise TrainingError("this LoRA run has ended and its adapters are folded into the model: "
                                "make a new Trainer to train on")
        self._stop.clear()
        try:
            yield from self._run()
        except _Dropped:
            log.info("training stopped at step %d (the step under way was dropped)", self.step)
        finally:
            if lora:
                merge_lora(self.sam)

    def _embed_all(self) -> Iterator[StageReport]:
        """Frozen encoder: every needed embedding once (from the cache when there), kept in memory."""
        needed = [(i, sorted({s.z for s in self.train_samples + self.val_samples if s.pair == i}))
                  for i in range(len(self.pairs))]
        total, done = sum(len(zs) for _, zs in needed), 0
        for i, zs in needed:
            for _ in self.embedders[i].embed(zs):
                done += 1
                yield StageReport("embedding", done, total)
            self.embedders[i]._memory_slices = max(self.embedders[i]._memory_slices, len(zs))

    def _run(self) -> Iterator:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if not self.encoder_trained:
            yield from self._embed_all()
        stop = schedule.EarlyStop(cfg.patience, cfg.min_steps, self.warmup_steps, self.best_score)
        while self.epoch < cfg.epochs:
            rng = np.random.default_rng([cfg.seed, self.epoch])
            order = rng.permutation(len(self.train_samples))
            losses = []
            done = self.step - self.epoch * self.steps_per_epoch  # resumed mid-epoch: skip what was done
            skip = done * cfg.batch_size if 0 < done < self.steps_per_epoch else 0
            for b in range(skip, len(order), cfg.batch_size):
                rep = self._train_step([self.train_samples[i] for i in order[b:b + cfg.batch_size]], rng)
                losses.append(rep.loss)
                yield rep
            self.epoch += 1
            val_iou, val_dice = self.validate()
            train_loss = float(np.mean(losses)) if losses else float("nan")
            best = stop.update(val_iou if val_iou is not None else -train_loss)
            self.best_score = stop.best
            lv = self.last_validation
            self.history.append({"epoch": self.epoch, "step": self.step, "train_loss": train_loss,
                                 "val_iou": val_iou, "val_dice": val_dice, **{f"val_{k}": v for k, v in lv.items()}})
            last = self.save("last.pt")
            if best:
                self.save("best.pt")
            stopped = stop.reason(self.step, self.epoch, cfg.epochs)
            yield EpochReport(self.epoch, self.step, train_loss, val_iou, val_dice, best, str(last), stopped,
                              lv.get("box"), lv.get("click"), sum(len(v) for v in self.val_slices))
            if stopped:
                return


class _Dropped(Exception):
    """The step under way was dropped by ``request_stop``."""
