#!/usr/bin/env bash
# The GPU checks, as one prepared script for a lent GPU machine (under 8 minutes):
#   1. the GPU-only tests (cuda, bf16 autocast, torch.compile, a Ray sweep sharing a GPU)
#   2. fine-tune throughput of ResNet-18 and ResNet-50 at 32x32 (bench/gpu/throughput.py)
#   3. bench/search_efficiency.py at the largest budget that fits the time left (STEPS)
# JSON goes to bench/results/gpu/, named after the card.
#
#   bash bench/gpu/run.sh [--dry-run]
# Data: DATA_DIR (a folder with cifar-10-batches-py/) and WEIGHTS_DIR (resnet56-4bfd9763.th),
# default bench/gpu/carry/{datasets,models} (copy them there, ignored by git, and name that
# folder in the device tool's `carry`); without them, step 3 is skipped and step 2 uses
# CIFAR-shaped data made on the spot. --dry-run checks it all on the CPU in about a minute.
set -uo pipefail
cd "$(dirname "$0")/../.."
DRY=0; [[ "${1:-}" == "--dry-run" ]] && DRY=1
DATA_DIR=${DATA_DIR:-bench/gpu/carry/datasets}
WEIGHTS_DIR=${WEIGHTS_DIR:-bench/gpu/carry/models}
BUDGET_S=${BUDGET_S:-420}                       # leave a minute of the 8 for set-up and copying back
START=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
CARD=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_') if torch.cuda.is_available() else 'cpu')")
OUT=bench/results/gpu; mkdir -p "$OUT"
echo "card: $CARD, dry run: $DRY, budget: ${BUDGET_S}s"
if [[ $DRY == 0 && $CARD == cpu ]]; then echo "no GPU here: use --dry-run" >&2; exit 2; fi

echo "== 1. GPU-only tests"
if [[ $DRY == 1 ]]; then
    timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs 2>&1 | tail -4
else
    timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/tests-$CARD.txt" | tail -4
fi

echo "== 2. fine-tune throughput"
if [[ $DRY == 1 ]]; then
    timeout 120 python3 bench/gpu/throughput.py --steps 2 --batch 16 --models resnet18 --out /tmp/edgeprune-gpu-dry.json | tail -3
else
    timeout 150 python3 bench/gpu/throughput.py --data-dir "$DATA_DIR" --steps 200 --out "$OUT/throughput-$CARD.json"
fi

echo "== 3. search efficiency, time left $(left)s"
if [[ ! -f "$WEIGHTS_DIR/resnet56-4bfd9763.th" || ! -d "$DATA_DIR/cifar-10-batches-py" ]]; then
    echo "skipped: no CIFAR-10 in $DATA_DIR or no resnet56-4bfd9763.th in $WEIGHTS_DIR (see the header)"
elif [[ $DRY == 1 ]]; then
    timeout 300 python3 bench/search_efficiency.py --data-dir "$DATA_DIR" --models-dir "$WEIGHTS_DIR" --quick \
        --ways a_independent b_cascade --out /tmp/edgeprune-gpu-dry-search.json | tail -2
else
    # steps per rate that fit: 4 ways x 2 criteria x 8 rates, ~0.02 s a step for ResNet-56 at batch 128 on a
    # recent GPU, plus evaluation; halved for safety
    STEPS=$(( $(left) * 25 / 64 / 2 )); (( STEPS > 400 )) && STEPS=400
    echo "steps per rate: $STEPS (the CPU run used 60)"
    timeout $(( $(left) - 10 )) python3 bench/search_efficiency.py --data-dir "$DATA_DIR" --models-dir "$WEIGHTS_DIR" \
        --steps "$STEPS" --test-fraction 1.0 --refine-epochs 1 --out "$OUT/search_efficiency-$CARD.json"
fi
echo "done in $(( $(date +%s) - START ))s; results in $OUT"
