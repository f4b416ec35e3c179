#!/usr/bin/env bash
# Every run in checkpoints/in-progress/ continued side by side on one GPU for BUDGET seconds,
# and the paper's second-order 20-way runs (too slow for a CPU) started there from scratch:
#
#   OMNIGLOT_DIR=... BUDGET=480 bash checkpoints/continue_on_gpu.sh
#
# Each run is stopped as Ctrl-C stops it (SIGINT: the meta-step in hand ends, checkpoint.pt is
# written), keeping its own setting and planned total, so it goes on later on any machine with
# `--resume`. Afterwards copy each runs/<name> into checkpoints/in-progress/ and update its row
# in checkpoints/README.md (tests/test_checkpoints.py checks the row against the checkpoint).
set -euo pipefail
budget=${BUDGET:-480}
mkdir -p runs/logs
train="python3 -m maml_helpers.train --device ${DEVICE:-cuda} --no-progress --no-download --threads 2
       --checkpoint-minutes 1"
# A short check first, so that a broken setup fails in seconds, not after the budget.
rm -rf /tmp/gpu-check
$train --iterations 3 --meta-batch 4 --val-every 3 --val-tasks 4 --out /tmp/gpu-check >/dev/null

planned() {  # the run's planned total, as its checkpoint records it
    python3 -c "import sys; from maml_helpers.checkpoint import load_model
print(load_model(sys.argv[1], training=True)[1]['planned_iterations'])" "$1/checkpoint.pt"
}
pids=()
launch() {  # launch NAME FLAGS...: train into runs/NAME, stopped as by Ctrl-C after BUDGET seconds
    local name=$1; shift
    timeout -s INT -k 300 "$budget" $train "$@" --out "runs/$name" > "runs/logs/$name.log" 2>&1 &
    pids+=($!)
}
shopt -s nullglob  # no run in progress: the loop below is skipped, not given a literal "*/"
for dir in checkpoints/in-progress/*/; do
    name=$(basename "$dir")
    [ -e "runs/$name" ] || cp -r "$dir" runs/
    launch "$name" --resume --iterations "$(planned "runs/$name")"
done
# The paper's settings and constant meta-lr, 5 query drawings per class at 5 shots as its code.
[ -e runs/20way1shot-so-q1-seed0 ] || launch 20way1shot-so-q1-seed0 --ways 20 --shots 1 --iterations 60000
[ -e runs/20way5shot-so-q5-seed0 ] || launch 20way5shot-so-q5-seed0 --ways 20 --shots 5 --queries 5 --iterations 60000
status=0
for pid in "${pids[@]}"; do
    code=0; wait "$pid" || code=$?
    [ "$code" -eq 0 ] || [ "$code" -eq 124 ] || status=$code  # 124: stopped at the budget, as planned
done
tail -n 2 runs/logs/*.log
exit $status
