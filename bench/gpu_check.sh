#!/usr/bin/env bash
# MFU check of the trainer on one CUDA GPU (an H200: target >= 35% of 989 TFLOP/s in bf16).
#   bash bench/gpu_check.sh            # from the repository root; under 8 minutes
# Uses $PYTHON (default: python3), which needs torch >= 2.11 with CUDA and numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: $PYTHON's torch sees no CUDA GPU; run this on the GPU machine." >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 470 "$PYTHON" bench/gpu_check.py "$@"
