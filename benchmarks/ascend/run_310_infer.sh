#!/usr/bin/env bash
# Ascend 310 inference through MindSpore Lite. Step 1 runs where MindSpore 2.10 is installed (any host):
# make the auto plan for the 310's inference (timed on Ascend when run on a 910 host, else pass --device CPU),
# compress, export both MindIR files. Step 2 runs on the 310 host (mindspore_lite of the same version).
#   step 1:  benchmarks/ascend/run_310_infer.sh export   [DEVICE=Ascend|CPU] [CKPT=resnet50.ckpt]
#   step 2:  benchmarks/ascend/run_310_infer.sh convert  (on the 310 host: converter_lite MindIR -> Lite model)
#   step 3:  benchmarks/ascend/run_310_infer.sh time     (copy out/*.mindir to the 310 host first)
# OUT defaults to a folder outside the repository ($HOME/lrd_runs/ascend310).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$HOME/lrd_runs/ascend310}
mkdir -p "$OUT"
case "${1:-}" in
  export)
    DEVICE=${DEVICE:-Ascend}
    CK=(); [ -n "${CKPT:-}" ] && CK=(--checkpoint "$CKPT")
    lrd plan --model resnet50 "${CK[@]}" --mode auto --device "$DEVICE" --objective infer --profile-batch 1 \
        --ratio 3 --rank-multiple 32 --budget 2 --out "$OUT/plan_auto.json"
    lrd compress --model resnet50 "${CK[@]}" --plan "$OUT/plan_auto.json" --out "$OUT/resnet50_auto"
    lrd export --model resnet50 --compressed "$OUT/resnet50_auto" --format MINDIR --batch 1 --out "$OUT/resnet50_auto.mindir"
    lrd export --model resnet50 --original "${CK[@]}" --format MINDIR --batch 1 --out "$OUT/resnet50.mindir"
    ;;
  convert)
    for NAME in resnet50_auto resnet50; do
      python -m lrd_bench.converter --mindir "$OUT/$NAME.mindir" --out "$OUT/${NAME}_lite" --device Ascend
    done
    ;;
  time)
    LITE=""; [ -f "$OUT/resnet50_auto_lite.mindir" ] && LITE=_lite
    python benchmarks/lite_infer.py --mindir "$OUT/resnet50_auto$LITE.mindir" --baseline "$OUT/resnet50$LITE.mindir" \
        --device Ascend --batch 1 --repeat 50 --warmup 10 --out "$OUT/lite_310_bs1.json"
    ;;
  *) echo "usage: $0 export|convert|time" >&2; exit 2 ;;
esac
