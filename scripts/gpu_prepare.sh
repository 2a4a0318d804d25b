#!/usr/bin/env bash
# Prepare, here (network to PyPI, ../shared/data beside the checkout), what the GPU machine lacks, in
# .gpu/ (ignored by git, kept between sessions): run once; then benchmarks/gpu_suite.sh (carry
# .gpu/whl and .gpu/data) and scripts/gpu_train.sh (carry .gpu/whl and .gpu/train_data.npz) run there.
#   .gpu/whl/             wheels for Python 3.12 of what the device has not (segment-anything, dask,
#                         zarr, numcodecs, pooch, pynrrd ...); ~13 MB
#   .gpu/data/            the ISBI EM stack and the brain MRI of ../shared/data (eval_quality --quick); ~10 MB
#   .gpu/train_data.npz   scripts/train_builtin.py's training data, built here (--pack); ~31 MB
# The machine: one H200, Python 3.12, torch with CUDA, a real torchvision, numpy, scipy, scikit-image,
# tifffile; what travels is at most 64 MiB with the checkout (~13 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
mkdir -p .gpu/whl .gpu/data .git/info
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
for p in segment-anything==1.0 dask==2026.8.0 toolz==1.0.0 cloudpickle==3.1.1 partd==1.4.2 locket==1.0.0 \
         pyyaml==6.0.2 click==8.2.1 fsspec==2025.9.0 zarr==3.1.6 numcodecs==0.16.3 donfig==0.8.1.post1 \
         crc32c==2.7.1 typing_extensions==4.15.0 pooch==1.8.2 platformdirs==4.4.0 pynrrd==1.1.3; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl "$p"
done
for d in isbi2012-em brain-mri; do
  [ -d "../shared/data/$d" ] && cp -r "../shared/data/$d" .gpu/data/
done
[ -f .gpu/train_data.npz ] || "$PY" scripts/train_builtin.py --pack .gpu/train_data.npz --out /tmp/gpu_prepare_unused
du -sh .gpu/whl .gpu/data .gpu/train_data.npz
