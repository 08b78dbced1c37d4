#!/bin/bash
# Train on one device.  Usage:
#   bash scripts/run_standalone_train.sh CONFIG_PATH [--key value ...]
# Examples:
#   bash scripts/run_standalone_train.sh config/resnet18_digits_cpu.yaml
#   bash scripts/run_standalone_train.sh config/resnet50_imagenet2012_lrd.yaml --checkpoint_path RUN/compressed
#   bash scripts/run_standalone_train.sh config/resnet18_digits_cpu.yaml --framework torch
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash $0 CONFIG_PATH [--key value ...]" >&2
  exit 2
fi
CONFIG=$(realpath "$1"); shift
cd "$(dirname "$0")/.."
export GLOG_v=${GLOG_v:-3}
python train.py --config_path "$CONFIG" "$@"
