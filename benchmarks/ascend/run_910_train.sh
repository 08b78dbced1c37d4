#!/usr/bin/env bash
# Ascend 910: ResNet-50 original vs modes vs auto (MindSpore GRAPH mode), inference and training step.
# Run on the 910 host from the repository root, with the Ascend build of mindspore 2.10 and CANN set up
# (source /usr/local/Ascend/ascend-toolkit/set_env.sh). Results land in benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEVICE_ID=${DEVICE_ID:-0}
BATCH=${BATCH:-32}
python benchmarks/model_bench.py --device Ascend --frameworks mindspore --batch "$BATCH" \
    --modes original,vanilla,mode1,mode2,mode3,mode4,mode5,auto --ratio 3 --rank-multiple 32 --budget 2 \
    --tag "resnet50_ascend910_bs${BATCH}"
python benchmarks/layer_sweep.py --device Ascend --frameworks mindspore --batch "$BATCH"
python benchmarks/auto_budgets.py --framework mindspore --device Ascend --batch "$BATCH" --budgets none,1.5,2,3,4
