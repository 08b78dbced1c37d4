#!/bin/bash
# Evaluate a checkpoint file or a compressed-model directory.  Usage:
#   bash scripts/run_eval.sh CONFIG_PATH CHECKPOINT_PATH [--key value ...]
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash $0 CONFIG_PATH CHECKPOINT_PATH [--key value ...]" >&2
  exit 2
fi
CONFIG=$(realpath "$1"); CKPT=$(realpath "$2"); shift 2
cd "$(dirname "$0")/.."
export GLOG_v=${GLOG_v:-3}
python eval.py --config_path "$CONFIG" --checkpoint_path "$CKPT" "$@"
