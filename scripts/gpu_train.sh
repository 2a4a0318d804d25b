#!/usr/bin/env bash
# One prepared GPU training run of the built-in model (issue 12), for the device machine: one H200,
# Python 3.12, torch with CUDA and a real torchvision; no segment-anything, dask, zarr, and no
# ../shared/data there. Everything it needs travels in .gpu/ (ignored by git; ~45 MB).
#
# Prepare here once: `bash scripts/gpu_prepare.sh` (the wheels in .gpu/whl, the training data as
# scripts/train_builtin.py --pack builds it in .gpu/train_data.npz).
# Run on the device with `.gpu/whl` and `.gpu/train_data.npz` carried (MINUTES of training; the cosine is fitted to end in them):
#   MINUTES=7 bash scripts/gpu_train.sh
# $OUT gets train.log, best_fp16.pt (the best validation checkpoint, float16, what ships as
# src/napari_scroll_sam/sam/weights/<ARCH>.pt) and last_fp16.pt. Defaults: ARCH=small_hr warm-started
# from the shipped small_hr, batch 32, lr 5e-4, at most 60 epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
MINUTES=${MINUTES:-7}
ARCH=${ARCH:-small_hr}
INIT=${INIT:-small_hr}
BATCH=${BATCH:-32}
LR=${LR:-5e-4}
EPOCHS=${EPOCHS:-60}
DEVICE=${DEVICE:-cuda}                   # DEVICE=cpu PACKED=small.npz WHEELS=0: a smoke test anywhere
PACKED=${PACKED:-.gpu/train_data.npz}
WHEELS=${WHEELS:-1}
RUN=${RUN:-/tmp/gpu_run}             # the trainer's folder (last.pt with the optimizer: 22 MB, too big for $OUT)
mkdir -p "$OUT"
if [ "$WHEELS" = 1 ] && [ -d .gpu/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
[ -f "$PACKED" ] || { echo "gpu_train: $PACKED missing (see the header)" >&2; exit 1; }
if [ "$DEVICE" = cuda ]; then
  python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
fi
export PYTHONUNBUFFERED=1
python3 scripts/train_builtin.py --packed "$PACKED" --device "$DEVICE" --arch "$ARCH" --init "$INIT" \
  --out "$RUN" --minutes "$MINUTES" --fit --epochs "$EPOCHS" --lr "$LR" --batch-size "$BATCH" \
  --threads 8 2>&1 | tee "$OUT/train.log"
python3 - "$OUT" "$ARCH" "$RUN" <<'PY'
import os, sys, torch
from napari_scroll_sam.sam import load_model, save_checkpoint
out, arch, run = sys.argv[1:]
names = [n for n in ("best", "last") if os.path.isfile(f"{run}/{n}.pt")]
if not names:
    sys.exit(f"gpu_train: no checkpoint in {run}")
for name in names:  # best.pt: only once an epoch's validation ran
    save_checkpoint(f"{out}/{name}_fp16.pt", load_model(f"{run}/{name}.pt", device="cpu"), arch,
                    dtype=torch.float16)
    print("wrote", f"{out}/{name}_fp16.pt")
PY
