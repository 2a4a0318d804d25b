"""SAM models: configurations, published weights, devices, checkpoints.

``load_model`` takes a registry name (``vit_b``, ``vit_l``, ``vit_h``: Meta's weights,
downloaded once into :func:`cache_dir` and checked by SHA256), ``small`` (a CPU-sized SAM
of the same architecture), or the path of a checkpoint: Meta's plain state dict (its
configuration is read off the tensor shapes) or one written by :func:`save_checkpoint`
(``{"format": "napari-scroll-sam/1", "config": …, "model": …, **extras}``), which carries
its configuration. Files are always read with ``torch.load(weights_only=True)``.

Environment: ``NAPARI_SCROLL_SAM_CACHE`` (download folder), ``NAPARI_SCROLL_SAM_WEIGHTS_URL``
(a base URL replacing ``https://dl.fbaipublicfiles.com/segment_anything/``: mirrors, tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch

from ._compat import ensure_segment_anything

ensure_segment_anything()

from segment_anything.modeling import (  # noqa: E402
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

log = logging.getLogger(__name__)

FORMAT = "napari-scroll-sam/1"
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
DEFAULT_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
ENV_CACHE = "NAPARI_SCROLL_SAM_CACHE"
ENV_WEIGHTS_URL = "NAPARI_SCROLL_SAM_WEIGHTS_URL"
#: trained weights shipped with the package, ``<name>.pt`` (project format)
PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"
RANDOM_SEED = 0
_MB = 1 << 20


class ModelError(RuntimeError):
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

    def __post_init__(self):
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
        if self.mask_in_chans % 4:
            p.append(f"mask_in_chans {self.mask_in_chans} is not a multiple of 4")
        if p:
            raise ModelError(f"invalid SAM configuration {self.name!r}: " + "; ".join(p))

    @property
    def image_embedding_size(self) -> int:
        """Side of the encoder's output grid (``img_size // patch_size``)."""
        return self.img_size // self.patch_size

    def describe(self) -> str:
        return (f"embed {self.encoder_embed_dim}, {self.encoder_depth} blocks, "
                f"image {self.img_size}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder_global_attn_indexes"] = list(self.encoder_global_attn_indexes)
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
    return sam.eval()


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
        with torch.device("meta"):
            sam = build_sam(cfg)
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


# --------------------------------------------------------------------------- weights registry

class Weights(NamedTuple):
    url: str
    sha256: str
    filename: str


WEIGHTS: dict[str, Weights] = {
    "vit_b": Weights(DEFAULT_BASE_URL + "sam_vit_b_01ec64.pth",
                     "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                     "sam_vit_b_01ec64.pth"),
    "vit_l": Weights(DEFAULT_BASE_URL + "sam_vit_l_0b3195.pth",
                     "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                     "sam_vit_l_0b3195.pth"),
    "vit_h": Weights(DEFAULT_BASE_URL + "sam_vit_h_4b8939.pth",
                     "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                     "sam_vit_h_4b8939.pth"),
}


def cache_dir() -> Path:
    """Where downloaded weights go: ``$NAPARI_SCROLL_SAM_CACHE`` or the user cache folder."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-scroll-sam"))


def _known_names() -> str:
    return ", ".join(dict.fromkeys([*CONFIGS, *WEIGHTS]))


def _weights(name: str) -> Weights:
    if name not in WEIGHTS:
        raise ModelError(f"no published weights named {name!r}; known: {', '.join(WEIGHTS)}")
    return Weights(*WEIGHTS[name])


def weights_url(name: str) -> str:
    """The URL ``name``'s weights come from (``$NAPARI_SCROLL_SAM_WEIGHTS_URL`` applied)."""
    entry = _weights(name)
    base = os.environ.get(ENV_WEIGHTS_URL)
    return base.rstrip("/") + "/" + entry.filename if base else entry.url


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(path: Path, sha256: str) -> bool:
    """True when ``path`` was hash-checked before and has not changed since (no re-hash)."""
    try:
        st = path.stat()
        mark = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return False
    return mark == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def download_weights(name: str, cache: str | os.PathLike | None = None,
                     progress: bool = True) -> Path:
    """Path of ``name``'s checked weights file in the cache, downloaded if not there yet."""
    import pooch

    entry = _weights(name)
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    target = folder / entry.filename
    if _is_verified(target, entry.sha256):
        return target
    url = weights_url(name)
    try:
        got = Path(pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=entry.filename,
                                  path=folder, progressbar=progress))
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise ModelError(f"could not download {name!r} weights from {url}: {exc}") from None
        target.unlink(missing_ok=True)  # a stale file that failed the check too
        raise ModelError(
            f"the download of {entry.filename} from {url} does not have the expected SHA256 "
            f"({entry.sha256[:12]}…); the download was removed and nothing was kept in "
            f"{folder}. The mirror may serve another file, or the transfer was corrupted."
        ) from None
    except Exception as exc:  # noqa: BLE001 — network, permissions
        raise ModelError(
            f"could not download {name!r} weights from {url}: {type(exc).__name__}: {exc}. "
            f"Offline, copy {entry.filename} into {folder}, set {ENV_WEIGHTS_URL} to a mirror, "
            f"or give load_model the checkpoint's path.") from None
    st = got.stat()
    try:
        _marker(got).write_text(json.dumps(
            {"sha256": entry.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    except OSError:
        pass  # read-only cache: it is hash-checked again next time
    return got


# --------------------------------------------------------------------------- devices

def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → cuda, then mps, then cpu; a named device must be available."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or "
                         f"'mps' (available: {', '.join(available_devices())})") from None
    available = ", ".join(available_devices())
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (dev.index is None or dev.index < count):
            return dev
        why = (f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
               else f"torch sees {count} CUDA device(s)")
        raise ModelError(f"device {str(dev)!r} is not available: {why}; available: {available}")
    if dev.type == "mps" and _mps_available():
        return dev
    raise ModelError(f"device {str(dev)!r} is not available; available: {available}")


# --------------------------------------------------------------------------- checkpoints

def _torch_load(path: Path) -> Any:
    if not path.exists():
        raise ModelError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            why = next((line.split("error:", 1)[1].strip() for line in str(exc).splitlines()
                        if "WeightsUnpickler error:" in line), "")
            raise ModelError(
                f"{path} holds Python objects besides tensors and plain values; it was refused "
                f"unread (torch.load weights_only=True) because unpickling them can run code"
                f"{f' ({why})' if why else ''}. If you trust it, re-save its state dict alone."
            ) from None
        raise ModelError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 — zip reader, EOF, magic number …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                         f"{type(exc).__name__}: {first}") from None


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file safely.

    Returns ``{"format": FORMAT or None, "config": SamConfig, "model": state dict,
    "extra": {…}}``; for a plain state dict (Meta's) the configuration is inferred.
    """
    path = Path(path).expanduser()
    obj = _torch_load(path)
    if isinstance(obj, Mapping) and "format" in obj:
        if obj["format"] != FORMAT:
            raise ModelError(f"{path}: checkpoint format {obj['format']!r} is not one this "
                             f"version reads ({FORMAT!r})")
        if "config" not in obj or not _is_state_dict(obj.get("model")):
            raise ModelError(f"{path}: a {FORMAT} checkpoint needs 'config' and 'model' entries")
        try:
            cfg = SamConfig.from_dict(obj["config"])
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None
        extra = {k: v for k, v in obj.items() if k not in ("format", "config", "model")}
        return {"format": FORMAT, "config": cfg, "model": dict(obj["model"]), "extra": extra}
    sd = obj
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        sd = next((obj[k] for k in ("model", "state_dict", "model_state_dict")
                   if _is_state_dict(obj.get(k))), obj)
    if not _is_state_dict(sd):
        raise ModelError(f"{path} is not a SAM checkpoint: it holds a {type(obj).__name__}, "
                         f"not a state dict (names → tensors) or a {FORMAT} checkpoint")
    if all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    try:
        cfg = infer_config(sd)
    except ModelError as exc:
        raise ModelError(f"{path} does not fit any SAM: {exc}; {_looks_like(sd)}") from None
    return {"format": None, "config": cfg, "model": dict(sd), "extra": {}}


def _fingerprint(path: Path) -> str:
    """Cheap identity of a file: first and last MB (a zip's end lists every entry's
    CRC-32), size and modification time."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(_MB))
        if st.st_size > _MB:
            f.seek(max(_MB, st.st_size - _MB))
            h.update(f.read())
    return h.hexdigest()[:12]


def _instantiate(cfg: SamConfig, sd: Mapping[str, torch.Tensor], what: str) -> Sam:
    """A Sam holding ``sd`` (cast to float32), built without a throw-away random init."""
    with torch.device("meta"):
        sam = build_sam(cfg)
    _check_fits(sd, cfg, what, sam)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    sam.load_state_dict(sd, strict=True, assign=True)
    # the two non-persistent buffers are not in any state dict
    sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
    sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
    if any(t.is_meta for t in [*sam.parameters(), *sam.buffers()]):
        raise ModelError(f"{what}: internal error, tensors left unloaded")
    return sam.eval()


@dataclass
class SamModel:
    """A loaded SAM: the module (eval mode, on ``device``) and where it came from.

    ``model_id`` changes whenever the weights change: ``vit_b:<sha256[:12]>`` for a
    download, ``<name>:<file fingerprint>`` for a file, ``<name>:random`` for the seeded
    random initialisation.
    """

    sam: Sam = field(repr=False)
    config: SamConfig
    device: torch.device
    model_id: str
    source: Path | str

    @property
    def img_size(self) -> int:
        return self.config.img_size

    @property
    def name(self) -> str:
        return self.config.name

    def to(self, device: str | torch.device) -> "SamModel":
        """Move the module (in place) and return the model on ``device``."""
        dev = resolve_device(device)
        return dataclasses.replace(self, sam=self.sam.to(dev), device=dev)


def _random_model(cfg: SamConfig) -> Sam:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build_sam(cfg)


def load_model(name_or_path: str | os.PathLike, device: str | torch.device | None = "auto", *,
               config: SamConfig | str | None = None, cache: str | os.PathLike | None = None,
               progress: bool = True) -> SamModel:
    """Load a SAM by registry name (``vit_b``, ``vit_l``, ``vit_h``, ``small``) or file path.

    ``config`` states the architecture the file must have (an error names what it looks like
    otherwise); ``cache`` overrides :func:`cache_dir` for downloads.
    """
    dev = resolve_device(device)  # fail before any download
    expected = _config(config) if config is not None else None
    key = name_or_path if isinstance(name_or_path, str) else None
    model_id = None
    if key is not None and key in WEIGHTS:
        path = download_weights(key, cache, progress)
        expected = expected or CONFIGS.get(key)
        model_id = f"{key}:{_weights(key).sha256[:12]}"
    elif key is not None and key in CONFIGS:
        path = PACKAGED_WEIGHTS / f"{key}.pt"
        if not path.is_file():
            cfg = expected or CONFIGS[key]
            log.warning("no trained weights for %r are packaged: using random weights (seed %d); "
                        "its masks mean nothing until it is fine-tuned", key, RANDOM_SEED)
            return SamModel(_random_model(cfg).to(dev).eval(), cfg, dev, f"{key}:random", key)
        expected = expected or CONFIGS[key]
    elif isinstance(name_or_path, os.PathLike) or (
            key is not None and (os.sep in key or "/" in key or Path(key).suffix or Path(key).exists())):
        path = Path(name_or_path).expanduser()
    else:
        raise ModelError(f"unknown model {name_or_path!r}; known: {_known_names()} "
                         f"(or give the path of a checkpoint file)")

    ckpt = read_checkpoint(path)
    cfg, sd = ckpt["config"], ckpt["model"]
    if expected is not None:
        if ckpt["format"] and dataclasses.replace(ckpt["config"], name=expected.name) != expected:
            raise ModelError(f"{path} does not fit {expected.name} ({expected.describe()}): "
                             f"it holds a {cfg.name} ({cfg.describe()}) configuration")
        cfg = expected
    sam = _instantiate(cfg, sd, str(path))
    if model_id is None:  # Meta's file given by path: the download's id if it was checked
        model_id = next((f"{name}:{Weights(*entry).sha256[:12]}" for name, entry in WEIGHTS.items()
                         if Weights(*entry).filename == path.name
                         and _is_verified(path, Weights(*entry).sha256)),
                        f"{cfg.name}:{_fingerprint(path)}")
    return SamModel(sam.to(dev).eval(), cfg, dev, model_id, path)


def _plain(value: Any, where: str) -> Any:
    """``value`` as something ``torch.load(weights_only=True)`` reads back (or an error)."""
    import numpy as np

    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or type(value) in (bool, int, float, complex, str, bytes, torch.dtype,
                                        torch.Size, torch.device):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach() if isinstance(value, torch.nn.Parameter) else value
    for base in (bool, int, float, str):  # enums and other subclasses: their plain value
        if isinstance(value, base):
            return base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, Mapping):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise ModelError(f"checkpoint extra {where!r} has a key of type {type(k).__name__}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise ModelError(f"checkpoint extra {where!r} is a {type(value).__name__}: checkpoints hold "
                     f"only tensors and plain Python values (they are read with weights_only=True)")


def save_checkpoint(path: str | os.PathLike, model: SamModel | Sam, /,
                    config: SamConfig | str | None = None, *, dtype: torch.dtype | None = None,
                    **extra: Any) -> Path:
    """Write ``model`` as a napari-scroll-sam checkpoint, atomically; return its path.

    ``extra`` (optimizer state, step, best score, sampling, window …) is stored beside the
    weights; ``dtype=torch.float16`` halves the file (it loads back as float32).
    """
    path = Path(path).expanduser()
    if isinstance(model, SamModel):
        sam, cfg = model.sam, _config(config) if config is not None else model.config
    elif isinstance(model, Sam):
        sam = model
        if config is None:
            cfg = infer_config(sam.state_dict())
            if cfg.name not in CONFIGS:
                raise ModelError("save_checkpoint needs the config of a Sam that is not one of "
                                 f"{', '.join(CONFIGS)} (decoder heads do not show in its weights)")
        else:
            cfg = _config(config)
    else:
        raise ModelError(f"save_checkpoint takes a SamModel or a Sam, not {type(model).__name__}")
    clash = sorted({"format", "config", "model"} & set(extra))
    if clash:
        raise ModelError(f"checkpoint extras may not be named {clash}")
    extra = {k: _plain(v, k) for k, v in extra.items()}
    sd = {k: v.detach().to("cpu", dtype=dtype if dtype is not None and v.is_floating_point() else None)
          for k, v in sam.state_dict().items()}
    _check_fits(sd, cfg, f"the model saved to {path}")
    payload = {"format": FORMAT, "config": cfg.to_dict(), "model": sd, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def model_summary(model: SamModel | Sam) -> dict[str, Any]:
    """Name, parameter count, input size, device (and id, source) of a model."""
    sam = model.sam if isinstance(model, SamModel) else model
    param = next(sam.parameters())
    out = {
        "name": model.config.name if isinstance(model, SamModel) else "custom",
        "params": sum(p.numel() for p in sam.parameters()),
        "img_size": int(sam.image_encoder.img_size),
        "device": str(model.device if isinstance(model, SamModel) else param.device),
    }
    if isinstance(model, SamModel):
        out.update(model_id=model.model_id, source=str(model.source))
    return out
