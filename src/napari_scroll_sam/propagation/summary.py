"""What a walk did, per object: slices reached, where each direction stopped and why, and
where the masks came from (model, prior, ...). One place for the CLI, the widget and scripts."""

from __future__ import annotations

from collections import Counter


def summarize(reports, cancelled: bool = False) -> dict:
    """{object id: {"slices": n written, "range": (lo, hi), "stops": {"up": reason, "down": reason},
    "sources": {source: n}}} from a walk's ``SliceReport``s. A direction that ran to its limit
    without a rule firing says "reached the limit"; of a ``cancelled`` walk, where it was when
    the walk was cancelled (it may not have begun)."""
    out = {}
    for r in reports:
        o = out.setdefault(r.object_id, {"zs": set(), "stops": {}, "sources": Counter(), "dirs": set(), "last": {}})
        if r.direction:
            o["dirs"].add(r.direction)
            o["last"][r.direction] = r.z
        if r.stopped:
            o["stops"]["up" if r.direction > 0 else "down" if r.direction < 0 else "seed"] = f"{r.stopped} (slice {r.z})"
        elif r.area:
            o["zs"].add(r.z)
            o["sources"][r.source] += 1
    res = {}
    for oid, o in sorted(out.items()):
        stops = dict(o["stops"])
        for d, name in ((1, "up"), (-1, "down")):
            if name in stops:
                continue
            if cancelled:
                stops[name] = f"cancelled after slice {o['last'][d]}" if d in o["dirs"] else "cancelled before it began"
            elif d in o["dirs"]:
                stops[name] = "reached the limit"
        zs = sorted(o["zs"])
        res[oid] = {"slices": len(zs), "range": (zs[0], zs[-1]) if zs else None, "stops": stops,
                    "sources": dict(o["sources"])}
    return res


def walk_summary(reports, cancelled: bool = False) -> list[str]:
    """One line per object, for people."""
    lines = []
    for oid, s in summarize(reports, cancelled).items():
        rng = f"slices {s['range'][0]}..{s['range'][1]}" if s["range"] else "no slice"
        stops = "; ".join(f"{k}: {v}" for k, v in s["stops"].items()) or "-"
        src = ", ".join(f"{k} {v}" for k, v in s["sources"].items())
        lines.append(f"object {oid}: {s['slices']} slices ({rng}); {stops}; masks from {src}")
    return lines
