#!/usr/bin/env bash
# One prepared GPU run: embedding, propagation speed and the quick quality benchmark with vit_b on CUDA,
# JSON into $OUT (default ./gpu_out). Meant for the device machine (one H200, Python 3.12, torch with
# CUDA and a real torchvision; no segment-anything, zarr, numcodecs, dask, pooch there).
#
# Prepare here once (wheels for Python 3.12 and a copy of the data eval_quality --quick reads, into
# the ignored .gpu/): `bash scripts/gpu_prepare.sh`. Then run on the device with `.gpu/whl` and
# `.gpu/data` carried:
#   bash benchmarks/gpu_suite.sh
# vit_b weights cannot be downloaded there: put sam_vit_b_01ec64.pth into $NAPARI_SCROLL_SAM_CACHE
# (carry it) for real masks; without it the benchmarks use seeded random weights and say so
# (timings hold, quality figures then mean nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
WHL=.gpu/whl; [ -d "$WHL" ] || WHL=.whl
[ -d .gpu/data ] && export NAPARI_SCROLL_SAM_DATA=$PWD/.gpu/data   # ../shared does not travel
if [ -d "$WHL" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD/src || { echo "gpu_suite: wheel install failed" >&2; exit 1; }
else
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1 || true
status=0
run() {  # name, then the command; a failing step is recorded and the next one still runs
  local name=$1; shift
  echo "gpu_suite: $name" >&2
  local t0=$SECONDS
  if "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"; then
    echo "gpu_suite: $name done in $((SECONDS - t0)) s" >&2
  else
    echo "gpu_suite: $name FAILED (see $name.log)" >&2; status=1
  fi
}
run bench_embed python3 benchmarks/bench_embed.py --device cuda
run bench_propagate python3 benchmarks/bench_propagate.py --device cuda --models small,vit_b
run eval_quality_quick python3 benchmarks/eval_quality.py --quick --model vit_b --device cuda
exit $status
