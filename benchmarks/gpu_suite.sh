#!/usr/bin/env bash
# One prepared GPU run: embedding, propagation speed and the quick quality benchmark with vit_b on CUDA,
# JSON into $OUT (default ./gpu_out). Meant for the device machine (one H200, Python 3.12, torch with
# CUDA and a real torchvision; no segment-anything, zarr, numcodecs, dask, pooch there).
#
# Prepare here (network to PyPI), once, from the repository's root:
#   echo /.whl/ >> .git/info/exclude
#   for p in segment-anything==1.0 zarr==3.1.6 numcodecs==0.16.3 dask==2026.8.0 donfig==0.8.1.post1 \
#            crc32c==2.7.1 toolz==1.0.0 cloudpickle==3.1.1 partd==1.4.2 locket==1.0.0 fsspec==2025.9.0 \
#            pooch==1.8.2 platformdirs==4.4.0 tifffile==2025.9.9 imagecodecs==2025.8.2 pynrrd==1.1.3 \
#            typing_extensions==4.15.0 pyyaml==6.0.2; do
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl "$p" || python3 -m pip download --no-deps --only-binary=:all: -d .whl "$p"
#   done
# (versions: those `pip list` shows in this project's venv; pure-Python wheels need no platform.)
# Then run on the device with `.whl` carried:
#   bash benchmarks/gpu_suite.sh
# vit_b weights cannot be downloaded there: put sam_vit_b_01ec64.pth into $NAPARI_SCROLL_SAM_CACHE
# (carry it) for real masks; without it the benchmarks use seeded random weights and say so
# (timings hold, quality figures then mean nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
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
