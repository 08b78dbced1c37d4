#!/bin/bash
# Data-parallel training on DEVICE_NUM devices of this host.  Usage:
#   bash scripts/run_distribute_train.sh DEVICE_NUM CONFIG_PATH [--key value ...]
# MindSpore (default): msrun starts a scheduler and DEVICE_NUM workers (dynamic cluster; HCCL on
#   Ascend, NCCL on GPU, the dynamic-cluster collectives on CPU). Logs in ${LOG_DIR:-./msrun_log}.
#   For an Ascend rank table instead, export RANK_TABLE_FILE and start one train.py per device.
# torch twin: FRAMEWORK=torch uses torchrun + DistributedDataParallel (gloo on CPU, nccl on GPU).
# batch_size in the config is per device; the global batch is batch_size x DEVICE_NUM.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash $0 DEVICE_NUM CONFIG_PATH [--key value ...]" >&2
  exit 2
fi
DEVICE_NUM=$1
CONFIG=$(realpath "$2"); shift 2
cd "$(dirname "$0")/.."
export GLOG_v=${GLOG_v:-3}
if [ "${FRAMEWORK:-mindspore}" = "torch" ]; then
  torchrun --standalone --nproc_per_node "$DEVICE_NUM" train.py --config_path "$CONFIG" \
      --framework torch --run_distribute True "$@"
else
  msrun --worker_num "$DEVICE_NUM" --local_worker_num "$DEVICE_NUM" --master_port "${MASTER_PORT:-8118}" \
      --log_dir "${LOG_DIR:-./msrun_log}" --join True \
      train.py --config_path "$CONFIG" --run_distribute True "$@"
fi
