#!/usr/bin/env bash
# NVIDIA GPU (V100-class): the same benchmarks with torch CUDA and MindSpore GPU.
# Needs a CUDA build of torch 2.13 and/or the GPU build of mindspore 2.10 on the GPU host.
set -euo pipefail
cd "$(dirname "$0")/../.."
BATCH=${BATCH:-32}
FRAMEWORKS=${FRAMEWORKS:-torch,mindspore}
python benchmarks/model_bench.py --device GPU --frameworks "$FRAMEWORKS" --batch "$BATCH" --budget 2 \
    --tag "resnet50_gpu_bs${BATCH}"
python benchmarks/layer_sweep.py --device GPU --frameworks "$FRAMEWORKS" --batch "$BATCH"
for fw in ${FRAMEWORKS//,/ }; do
  python benchmarks/auto_budgets.py --framework "$fw" --device GPU --batch "$BATCH"
done
