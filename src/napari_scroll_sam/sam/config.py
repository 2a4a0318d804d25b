"""SAM configurations: the shapes of vit_b / vit_l / vit_h / small, building one, and
recognising which configuration a state dict belongs to (strict loading's error messages)."""

from __future__ import annotations
from ..errors import ScrollSamError

import dataclasses
import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping

import torch

from ._compat import ensure_segment_anything
from .encoders import DEFAULT_SIGMAS, STEMS, FilterBankStem

ensure_segment_anything()

from segment_anything.modeling import (  # noqa: E402
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

log = logging.getLogger(__name__)

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)



class ModelError(ScrollSamError, RuntimeError):
    """A model, checkpoint, download or device that cannot be used (the message says why)."""



# --------------------------------------------------------------------------- configurations

@dataclass(frozen=True)
class SamConfig:
    """The shape of a SAM (``segment_anything.modeling``; MLP ratio 4, ImageNet pixel norm)."""

    name: str
    img_size: int
    patch_size: int
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    window_size: int
    prompt_embed_dim: int
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    stem: str = "patch"  # "patch" (SAM's) or "filters" (fixed filter bank + convs: sam.encoders)
    stem_sigmas: tuple[float, ...] = ()  # the filter bank's scales ("filters"; default 1, 2, 4)

    def __post_init__(self):
        object.__setattr__(self, "stem_sigmas", tuple(float(s) for s in self.stem_sigmas))
        object.__setattr__(self, "encoder_global_attn_indexes",
                           tuple(int(i) for i in self.encoder_global_attn_indexes))
        p = []
        if self.img_size % self.patch_size:
            p.append(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.encoder_embed_dim % self.encoder_num_heads:
            p.append(f"encoder_embed_dim {self.encoder_embed_dim} is not a multiple of "
                     f"encoder_num_heads {self.encoder_num_heads}")
        if any(not 0 <= i < self.encoder_depth for i in self.encoder_global_attn_indexes):
            p.append(f"encoder_global_attn_indexes {self.encoder_global_attn_indexes} outside "
                     f"0..{self.encoder_depth - 1}")
        if self.prompt_embed_dim % 2 or (self.prompt_embed_dim // 2) % self.decoder_num_heads:
            p.append(f"prompt_embed_dim {self.prompt_embed_dim} / 2 is not a multiple of "
                     f"decoder_num_heads {self.decoder_num_heads}")
        if self.stem not in STEMS:
            p.append(f"stem {self.stem!r} is not one of {', '.join(STEMS)}")
        elif self.stem == "filters" and self.patch_size != 16:
            p.append(f"the filters stem downsamples by 16, not patch_size {self.patch_size}")
        if any(s <= 0 for s in self.stem_sigmas):
            p.append(f"stem_sigmas {self.stem_sigmas} must be > 0")
        if self.mask_in_chans % 4:
            p.append(f"mask_in_chans {self.mask_in_chans} is not a multiple of 4")
        if p:
            raise ModelError(f"invalid SAM configuration {self.name!r}: " + "; ".join(p))

    @property
    def image_embedding_size(self) -> int:
        """Side of the encoder's output grid (``img_size // patch_size``)."""
        return self.img_size // self.patch_size

    def describe(self) -> str:
        stem = ", filter-bank stem" if self.stem == "filters" else ""
        return (f"embed {self.encoder_embed_dim}, {self.encoder_depth} blocks, "
                f"image {self.img_size}{stem}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder_global_attn_indexes"] = list(self.encoder_global_attn_indexes)
        d["stem_sigmas"] = list(self.stem_sigmas)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SamConfig":
        if not isinstance(d, Mapping):
            raise ModelError(f"a SAM configuration must be a mapping, not {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ModelError(f"unknown SAM configuration keys {unknown} (known: {names})")
        try:
            return cls(**dict(d))
        except TypeError as exc:
            raise ModelError(f"incomplete SAM configuration: {exc}") from None

    def _structure(self) -> tuple:
        """Everything that shows in the weights' shapes (not the name, not decoder heads)."""
        d = self.to_dict()
        return tuple((k, str(v)) for k, v in d.items() if k not in ("name", "decoder_num_heads"))


_META = dict(img_size=1024, patch_size=16, window_size=14, prompt_embed_dim=256)
CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig("vit_b", encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12,
                       encoder_global_attn_indexes=(2, 5, 8, 11), **_META),
    "vit_l": SamConfig("vit_l", encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                       encoder_global_attn_indexes=(5, 11, 17, 23), **_META),
    "vit_h": SamConfig("vit_h", encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                       encoder_global_attn_indexes=(7, 15, 23, 31), **_META),
    # The CPU-sized SAM: 256-px input, 16x16x128 embeddings, 1.85 M parameters (image
    # encoder 1.09 M, prompt encoder 3.3 k, mask decoder 0.76 M; 7.5 MB as float32, 3.8 MB
    # as float16), against 93.7 M for vit_b; it encodes a slice in ~20 ms on 2 CPU cores.
    # Same modules, prompts and predictor as Meta's models.
    "small": SamConfig("small", img_size=256, patch_size=16, encoder_embed_dim=128,
                       encoder_depth=4, encoder_num_heads=4, encoder_global_attn_indexes=(1, 3),
                       window_size=8, prompt_embed_dim=128, decoder_mlp_dim=512,
                       decoder_num_heads=4, iou_head_hidden_dim=128),
    # small with 8-px patches: a 32x32 token grid, so masks come out at half the input
    # resolution (128² for 256²) instead of a quarter; a 4-px papyrus sheet is 2 mask pixels.
    # Same parameters as small but for the grid-shaped tables (1.88 M); ~4x its encoder time.
    "small_hr": SamConfig("small_hr", img_size=256, patch_size=8, encoder_embed_dim=128,
                          encoder_depth=4, encoder_num_heads=4, encoder_global_attn_indexes=(1, 3),
                          window_size=8, prompt_embed_dim=128, decoder_mlp_dim=512,
                          decoder_num_heads=4, iou_head_hidden_dim=128),
    # small's ViT, neck and decoder behind a fixed filter bank (Gaussian, gradient, Hessian
    # and structure-tensor eigenvalues at sigma 1, 2, 4) and three learned convolutions.
    # No weights are shipped for it (the sweep in README: no faster learning than small's).
    "small_fb": SamConfig("small_fb", img_size=256, patch_size=16, encoder_embed_dim=128,
                          encoder_depth=4, encoder_num_heads=4, encoder_global_attn_indexes=(1, 3),
                          window_size=8, prompt_embed_dim=128, decoder_mlp_dim=512,
                          decoder_num_heads=4, iou_head_hidden_dim=128, stem="filters",
                          stem_sigmas=DEFAULT_SIGMAS),
}


def _config(config: SamConfig | str) -> SamConfig:
    if isinstance(config, SamConfig):
        return config
    if isinstance(config, str) and config in CONFIGS:
        return CONFIGS[config]
    raise ModelError(f"unknown SAM configuration {config!r}; known: {', '.join(CONFIGS)}")


def build_sam(config: SamConfig | str) -> Sam:
    """A ``segment_anything`` ``Sam`` of this configuration (initial weights, eval mode).

    Built on the current default device (``with torch.device("meta"):`` builds it without
    memory, e.g. to look at shapes).
    """
    cfg = _config(config)
    grid = cfg.image_embedding_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg.encoder_depth, embed_dim=cfg.encoder_embed_dim, img_size=cfg.img_size,
            mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg.encoder_num_heads, patch_size=cfg.patch_size, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=cfg.encoder_global_attn_indexes,
            window_size=cfg.window_size, out_chans=cfg.prompt_embed_dim),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(cfg.img_size, cfg.img_size), mask_in_chans=cfg.mask_in_chans),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=cfg.decoder_depth,
                                          embedding_dim=cfg.prompt_embed_dim,
                                          mlp_dim=cfg.decoder_mlp_dim,
                                          num_heads=cfg.decoder_num_heads),
            transformer_dim=cfg.prompt_embed_dim, iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim),
        pixel_mean=list(PIXEL_MEAN), pixel_std=list(PIXEL_STD),
    )
    if cfg.stem == "filters":
        sam.image_encoder.patch_embed = FilterBankStem(cfg.encoder_embed_dim, cfg.stem_sigmas or DEFAULT_SIGMAS)
    sam.image_encoder.patch_size = cfg.patch_size
    return sam.eval()


#: configurations with more encoder weights than this are built on the meta device before
#: loading weights (no memory spent on a throw-away init); smaller ones on the CPU, since the
#: first meta build imports torch._dynamo (~0.9 s of imports that stall napari's GUI thread)
META_BUILD_MIN_PARAMS = 20_000_000


def build_to_load(config: SamConfig | str) -> Sam:
    """A ``Sam`` of ``config`` whose weights are about to be replaced (``load_state_dict(...,
    assign=True)``): on the meta device when it is large, else on the CPU."""
    cfg = _config(config)
    if 12 * cfg.encoder_depth * cfg.encoder_embed_dim ** 2 < META_BUILD_MIN_PARAMS:
        return build_sam(cfg)
    with torch.device("meta"):
        return build_sam(cfg)


def _count(sd: Mapping[str, Any], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    return max(found) + 1 if found else 0


def infer_config(state_dict: Mapping[str, torch.Tensor], name: str | None = None) -> SamConfig:
    """Read a SAM configuration off a state dict's tensor shapes.

    A known configuration (``CONFIGS``) with the same shapes is returned as is. Otherwise
    ``decoder_num_heads`` (invisible in the shapes) is taken as 8 where it divides.
    """
    sd = state_dict

    def shape(key):
        if key not in sd:
            raise ModelError(f"not a SAM state dict: {key!r} is missing")
        return tuple(sd[key].shape)

    embed, _, patch, _ = shape("image_encoder.patch_embed.proj.weight")
    stem = "filters" if "image_encoder.patch_embed.stem.0.0.weight" in sd else "patch"
    sigmas: tuple = ()
    if stem == "filters":  # the bank's scales do not show in the weights: its channel count does
        patch, sigmas = 16, DEFAULT_SIGMAS
    grid = shape("image_encoder.pos_embed")[1]
    depth = _count(sd, "image_encoder.blocks.")
    sizes, head_dim = [], None
    for i in range(depth):
        rel = shape(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        sizes.append((rel[0] + 1) // 2)
        head_dim = rel[1]
    windows = {s for s in sizes if s != grid}
    if len(windows) > 1 or not head_dim:
        raise ModelError(f"not a SAM state dict: attention windows {sorted(windows)}")
    prompt = shape("image_encoder.neck.0.weight")[0]
    cfg = SamConfig(
        name=name or "custom", img_size=grid * patch, patch_size=patch, encoder_embed_dim=embed,
        encoder_depth=depth, encoder_num_heads=embed // head_dim,
        encoder_global_attn_indexes=tuple(i for i, s in enumerate(sizes) if s == grid),
        window_size=windows.pop() if windows else grid, prompt_embed_dim=prompt,
        mask_in_chans=shape("prompt_encoder.mask_downscaling.3.weight")[0],
        decoder_depth=_count(sd, "mask_decoder.transformer.layers."),
        decoder_mlp_dim=shape("mask_decoder.transformer.layers.0.mlp.lin1.weight")[0],
        decoder_num_heads=next(h for h in (8, 4, 2, 1) if (prompt // 2) % h == 0),
        iou_head_depth=_count(sd, "mask_decoder.iou_prediction_head.layers."),
        iou_head_hidden_dim=shape("mask_decoder.iou_prediction_head.layers.0.weight")[0],
        stem=stem, stem_sigmas=sigmas,
    )
    for known in CONFIGS.values():
        if known._structure() == cfg._structure():
            return known if name is None else dataclasses.replace(known, name=name)
    return cfg


def _looks_like(sd: Mapping[str, torch.Tensor]) -> str:
    try:
        cfg = infer_config(sd)
    except ModelError:
        proj = sd.get("image_encoder.patch_embed.proj.weight")
        if proj is None:
            return "it does not look like a SAM (no image_encoder.patch_embed.proj.weight)"
        return (f"it looks like an incomplete SAM (embed {proj.shape[0]}, "
                f"{_count(sd, 'image_encoder.blocks.')} blocks)")
    if cfg.name in CONFIGS:
        return f"it looks like {cfg.name} ({cfg.describe()})"
    return f"it looks like an unlisted SAM ({cfg.describe()})"


def _check_fits(sd: Mapping[str, torch.Tensor], cfg: SamConfig, what: str,
                sam: Sam | None = None) -> None:
    if sam is None:
        sam = build_to_load(cfg)
    expected = {k: tuple(v.shape) for k, v in sam.state_dict().items()}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} tensors differ in shape (e.g. {k}: {tuple(sd[k].shape)} in "
                     f"the file, {expected[k]} in {cfg.name})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    raise ModelError(f"{what} does not fit {cfg.name} ({cfg.describe()}): {_looks_like(sd)}; "
                     + "; ".join(parts))


