#!/bin/bash
# The ViT flow on one config: train -> decompose -> fine-tune (sequential freezing) -> evaluate -> export.
#   bash scripts/run_lrd_pipeline.sh CONFIG_PATH [--key value ...]
# Data parallel (8 Ascend devices): msrun --worker_num 8 --local_worker_num 8 pipeline.py --config_path ...
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash $0 CONFIG_PATH [--key value ...]" >&2
  exit 2
fi
CONFIG=$(realpath "$1"); shift
cd "$(dirname "$0")/.."
export GLOG_v=${GLOG_v:-3}
python pipeline.py --config_path "$CONFIG" "$@"
