#!/usr/bin/env bash
# The GPU checks, one prepared script for a lent GPU machine as it comes (its own Python 3.12
# and torch, no network, no edgeprune installed), inside a 7-minute budget (BUDGET_S=420):
#   0. set-up: the carried wheels it lacks (pip install --no-index --target), the carried
#      CIFAR-10 subset unpacked, a preflight of the versions and the card
#   1. the GPU-only tests (cuda, bf16 autocast, torch.compile; Ray only where ray is installed)
#   2. fine-tune throughput of ResNet-18 and ResNet-50 at 32x32 (bench/gpu/throughput.py)
#   3. bench/search_efficiency.py, independent vs cascade, at the steps per rate that fit
# Each step's failure or timeout is recorded and the next step runs. The edgeprune that runs
# is this tree's (PYTHONPATH), never an installed one.
#
#   python bench/gpu/prepare.py --data-dir DIR --models-dir DIR     (here, first: fills bench/gpu/carry)
#   bash bench/gpu/run.sh [--dry-run]                                (there, with bench/gpu/carry carried)
#
# Writes summary-, tests-, throughput- and search_efficiency-CARD.json/.txt to bench/results/gpu/
# and, with run-CARD.log, to $OUT when set (the device tool brings $OUT back). --dry-run runs
# every step small on the CPU (results in a temporary folder): a rehearsal of the set-up and
# the code paths in a Python 3.12 venv like the machine's (bench/gpu/README.md).
# PYTHON (default python3), BUDGET_S, CARRY_DIR, DATA_DIR and WEIGHTS_DIR override the defaults;
# ONLY="tests search" runs only those steps (a rerun of what failed). Exit 0: every step ok or
# skipped; 1: a step failed or ran out of time; 2: no GPU (without --dry-run).
set -uo pipefail
{   # the whole script is read before it runs: editing this file during a run cannot change that run
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=0; [[ "${1:-}" == "--dry-run" ]] && DRY=1
PY=${PYTHON:-python3}
CARRY=${CARRY_DIR:-bench/gpu/carry}
BUDGET_S=${BUDGET_S:-$(( DRY ? 1500 : 420 ))}
START=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
min() { echo $(( $1 < $2 ? $1 : $2 )); }
WORK=$(mktemp -d /tmp/edgeprune-gpu.XXXXXX)
RESULTS=bench/results/gpu; (( DRY )) && RESULTS=$WORK/results
mkdir -p "$RESULTS"; touch "$WORK/started"
exec > >(tee -a "$WORK/run.log") 2>&1

record() {   # name status seconds detail
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/steps.tsv"
    echo "-> $1: $2 after $3 s${4:+ ($4)}; $(left) s of the budget left"
}
step() {     # name limit_s output_file command...: runs it under its limit, never stops the script
    local name=$1 limit=$2 output=$3; shift 3
    if [[ -n ${ONLY:-} && $name != data && " $ONLY " != *" $name "* ]]; then
        record "$name" skipped 0 "not in ONLY=$ONLY"; return
    fi
    if (( limit < 30 )); then record "$name" skipped 0 "out of time: ${limit} s left for it"; return; fi
    echo "== $name (limit ${limit} s)"
    local t0; t0=$(date +%s)
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$output"
    local rc=${PIPESTATUS[0]} dt=$(( $(date +%s) - t0 ))
    case $rc in
        0) record "$name" ok "$dt" "" ;;
        124|137) record "$name" timeout "$dt" "stopped at its ${limit} s limit" ;;
        *) record "$name" failed "$dt" "exit $rc: $(grep -v '^\s*$' "$output" | tail -1 | cut -c1-200)" ;;
    esac
}

echo "== 0. set-up: $($PY --version 2>&1) at $(command -v "$PY"), dry run: $DRY, budget ${BUDGET_S} s, work in $WORK"
SITE=$WORK/site
if [[ ! -d $CARRY/wheels ]]; then
    record install skipped 0 "no $CARRY/wheels: run bench/gpu/prepare.py here first"
elif ! WHEELS=$($PY bench/gpu/pick_wheels.py "$CARRY/wheels"); then
    record install failed 0 "bench/gpu/pick_wheels.py failed (above)"
elif [[ -z $WHEELS ]]; then
    record install ok 0 "every carried distribution is installed already"
else
    t0=$(date +%s)
    # shellcheck disable=SC2086
    if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" $WHEELS; then
        record install ok $(( $(date +%s) - t0 )) "$(echo $WHEELS | wc -w) wheels into $SITE"
    else   # a wheel is a zip: unpacked into the target it imports the same
        for w in $WHEELS; do $PY -m zipfile -e "$w" "$SITE"; done
        record install failed $(( $(date +%s) - t0 )) "pip failed; the wheels were unzipped into $SITE instead"
    fi
fi
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

t0=$(date +%s)
$PY - >"$WORK/preflight.json" 2>"$WORK/preflight.err" <<'EOF'
import importlib.metadata as md, json, platform
out = {"python": platform.python_version()}
for name in ("torch", "torchvision", "torch-pruning", "pydantic", "pyyaml", "plotly", "onnx", "onnxruntime", "pytest",
             "ray"):
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = "missing"
import torch
import edgeprune
out["edgeprune"] = edgeprune.__file__
out["cuda"] = torch.version.cuda
out["card"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
print(json.dumps(out))
EOF
if [[ $? == 0 ]]; then
    CARD=$($PY -c "import json,re,sys; print(re.sub(r'[^A-Za-z0-9._-]', '_', json.load(open(sys.argv[1]))['card']))" \
           "$WORK/preflight.json")
    record preflight ok $(( $(date +%s) - t0 )) "card: $CARD (versions in the summary's preflight)"
else
    CARD=unknown
    record preflight failed $(( $(date +%s) - t0 )) "$(tail -1 "$WORK/preflight.err")"
fi
echo "card: $CARD"
if (( ! DRY )) && [[ $CARD == cpu || $CARD == unknown ]]; then
    record gpu failed 0 "no CUDA GPU here (card: $CARD): use --dry-run on a machine without one"
    $PY bench/gpu/summary.py "$WORK" "$WORK/summary-$CARD.json" --card "$CARD" --budget "$BUDGET_S" \
        --wall $(( $(date +%s) - START ))
    [[ -n ${OUT:-} && -d ${OUT:-} ]] && { cp "$WORK/summary-$CARD.json" "$OUT/"; cp "$WORK/run.log" "$OUT/run-$CARD.log"; }
    exit 2
fi

PACKED=$(ls "$CARRY"/datasets/cifar10-subset-*.npz.xz 2>/dev/null | head -1)
WEIGHTS_DIR=${WEIGHTS_DIR:-$CARRY/models}
if [[ -n ${DATA_DIR:-} ]]; then
    record data ok 0 "DATA_DIR=$DATA_DIR"
elif [[ -n $PACKED ]]; then
    DATA_DIR=$WORK/data
    step data 120 "$WORK/data.txt" $PY bench/gpu/cifar_pack.py unpack "$PACKED" "$DATA_DIR"
else
    DATA_DIR=$WORK/data
    record data skipped 0 "no CIFAR-10 carried ($CARRY/datasets/cifar10-subset-*.npz.xz): prepare.py --data-dir"
fi

if ! $PY -c "import ray" 2>/dev/null; then
    record ray_on_gpu skipped 0 "ray is not installed here and is not carried: its cp312 wheel (79 MB) is over the device's 64 MiB carry limit"
fi
if (( DRY )); then
    step tests "$(min 180 "$(left)")" "$RESULTS/tests-$CARD.txt" \
        $PY -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py --junitxml="$WORK/junit.xml"
    step throughput "$(min 300 $(( $(left) - 300 )))" "$WORK/throughput.txt" \
        $PY bench/gpu/throughput.py --data-dir "$DATA_DIR" --steps 2 --batch 16 --models resnet18 \
        --out "$RESULTS/throughput-$CARD.json"
else
    step tests "$(min 150 $(( $(left) - 240 )))" "$RESULTS/tests-$CARD.txt" \
        $PY -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py --junitxml="$WORK/junit.xml"
    step throughput "$(min 110 $(( $(left) - 130 )))" "$WORK/throughput.txt" \
        $PY bench/gpu/throughput.py --data-dir "$DATA_DIR" --steps 100 --out "$RESULTS/throughput-$CARD.json"
fi

WAYS="a_independent b_cascade"     # the comparison that matters; 2 ways x 2 criteria x 8 rates = 32 trials
if [[ ! -f $WEIGHTS_DIR/resnet56-4bfd9763.th || ! -d $DATA_DIR/cifar-10-batches-py ]]; then
    record search skipped 0 "no CIFAR-10 in $DATA_DIR or no resnet56-4bfd9763.th in $WEIGHTS_DIR: prepare.py --data-dir --models-dir"
elif (( DRY )); then
    # the same code path at its smallest (one criterion, one rate, two steps): a CPU trial of ResNet-56 takes minutes
    # shellcheck disable=SC2086
    step search "$(( $(left) - 20 ))" "$WORK/search.txt" $PY bench/search_efficiency.py --data-dir "$DATA_DIR" \
        --models-dir "$WEIGHTS_DIR" --ways $WAYS --algorithms l1 --rates 0.5 --steps 2 --test-fraction 0.02 \
        --refine-epochs 0.01 --out "$RESULTS/search_efficiency-$CARD.json"
else
    # Steps per rate that fit: ~3 s a trial of pruning, BN re-estimation and evaluation, ~0.02 s a step of
    # ResNet-56 at batch 128 (guesses until a first run measures them), halved for safety. The JSON is
    # written after each way, so a run stopped at its limit keeps the ways it finished.
    STEPS=$(( ($(left) - 40 - 32 * 3) * 50 / 32 / 2 )); (( STEPS > 400 )) && STEPS=400; (( STEPS < 20 )) && STEPS=20
    echo "steps per rate: $STEPS (the CPU run used 60)"
    # shellcheck disable=SC2086
    step search "$(( $(left) - 20 ))" "$WORK/search.txt" $PY bench/search_efficiency.py --data-dir "$DATA_DIR" \
        --models-dir "$WEIGHTS_DIR" --ways $WAYS --steps "$STEPS" --test-fraction 1.0 --refine-epochs 1 \
        --out "$RESULTS/search_efficiency-$CARD.json"
fi

WALL=$(( $(date +%s) - START ))
echo "== summary ($WALL s of the ${BUDGET_S} s budget)"
$PY bench/gpu/summary.py "$WORK" "$RESULTS/summary-$CARD.json" --card "$CARD" --budget "$BUDGET_S" --wall "$WALL" \
    $( (( DRY )) && echo --dry-run )
echo "results in $RESULTS: $(cd "$RESULTS" && ls | tr '\n' ' ')"
if [[ -n ${OUT:-} && -d ${OUT:-} ]]; then       # at most 8 files come back; these are 5
    find "$RESULTS" -maxdepth 1 -name "*-$CARD.*" -newer "$WORK/started" -exec cp {} "$OUT"/ \;
    cp "$WORK/run.log" "$OUT/run-$CARD.log"
    echo "copied to \$OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
rm -rf "$WORK/site" "$WORK/data"                # the rest of $WORK (log, dry-run results) is kept
# exit 1 when a step failed or ran out of time (the summary says which), else 0
awk -F'\t' '$2 == "failed" || $2 == "timeout" { bad = 1 } END { exit bad }' "$WORK/steps.tsv"
exit
}
