#!/usr/bin/env bash
# The warm-start campaign on one lent GPU, within ~10 minutes of device time.
#
# Run through the device tool from the repository root (the tool sets $OUT):
#     bash scripts/gpu_recipe.sh            # FP_MIN / QAT_MIN / CROP / BATCH override the sizes
# It continues from the committed state (checkpoints/qsci-t-gap-fp32.train.pt): full precision
# on 128x128 crops, then QAT at 8/4/3/2 bits, four runs at once; the run folders come back under
# $OUT/runs. Back on the development machine, pack and measure them into checkpoints/ with
#     python -m training.campaign --skip-training --export --runs <files_at>/runs
# The device's Python has its own torch (with CUDA); the other training packages must be there
# or be installed from a wheel folder carried as `wheels/` (see training/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_out}"
if [ -d wheels ]; then
  pip install -q --no-index --find-links wheels numpy scipy opencv-python-headless scikit-image \
    scikit-video tqdm h5py imageio tifffile || echo "note: some wheels did not install" >&2
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m training.campaign --device "${DEVICE:-cuda}" --fp-minutes "${FP_MIN:-5}" \
  --qat-minutes "${QAT_MIN:-3}" --parallel 4 --threads 2 --workers 3 \
  --crop "${CROP:-128}" --batch "${BATCH:-16}" --runs "$OUT/runs" ${EXTRA:-}
# checkpoints travel back; the optimizer states of QAT runs are not needed
for d in "$OUT"/runs/*/; do ls -la "$d"; done
