"""``napari-scroll-sam embed``: precompute SAM embeddings into the cache."""

from __future__ import annotations

from pathlib import Path

from ..layers import BUILTIN_MODEL, BUILTIN_MODELS
from ._common import mode_from_args


def run(args) -> int:
    from tqdm import tqdm

    from ..io.atomic import WriteError, check_writable
    from ..sam.distributed import EmbedJob, embed_volume
    from ..sam.embeddings import default_cache_root

    root = Path(args.cache) if args.cache else default_cache_root()
    try:  # embed's only product is the cache: refuse one that cannot take it, before any work
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{root}: cannot create the embedding cache ({exc.strerror or exc})") from None
    check_writable(root, f"{root}: the embedding cache")
    job = EmbedJob(volume_path=str(args.volume), model=args.model, device=args.device, mode=mode_from_args(args),
                   cache=args.cache, batch_size=args.batch_size, volume=args.volpkg_volume)
    zs = range(args.z[0], args.z[1]) if args.z else None
    reports = embed_volume(job, zs=zs, scheduler=args.scheduler)
    encoded = cached = 0
    with tqdm(desc="embedding", unit="slice") as bar:
        for r in reports:
            bar.total = r.total
            bar.update(1)
            cached += r.cached
            encoded += not r.cached
    where = args.cache or "the default cache"
    print(f"{encoded} slices encoded, {cached} already cached, in {where}")
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    embed = command("embed", help="precompute SAM embeddings of a volume into the cache")
    embed.add_argument("volume")
    embed.add_argument("--model", default=BUILTIN_MODEL, help=f"vit_b, vit_l, vit_h, {', '.join(BUILTIN_MODELS)}, or a checkpoint path")
    embed.add_argument("--device", default="auto")
    embed.add_argument("--mode", default="every", help="slice sampling: every, tuples, random")
    embed.add_argument("--stride", type=int, default=None)
    embed.add_argument("--d", type=int, default=None, help="tuples: slice distance")
    embed.add_argument("--window", type=int, default=None, help="random tuples: half window")
    embed.add_argument("--seed", type=int, default=None)
    embed.add_argument("--z", type=int, nargs=2, metavar=("START", "STOP"), help="only slices START..STOP-1")
    embed.add_argument("--cache", default=None, help="cache folder (default: $NAPARI_SCROLL_SAM_CACHE or the OS cache)")
    embed.add_argument("--batch-size", type=int, default=None)
    embed.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    embed.add_argument("--volpkg-volume", default=None, help="which volume of a .volpkg")
    embed.set_defaults(func=run)
