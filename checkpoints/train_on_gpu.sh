#!/usr/bin/env bash
# Four meta-training runs side by side on one GPU, each for a fixed time (--time-budget).
#
# At these sizes one run keeps a GPU mostly idle (each kernel sees a few images; the time goes
# to launching them), so several processes share it well. Each run times 30 meta-steps, sets
# its own --iterations (and so where its meta-lr cosine ends) to fit BUDGET seconds, and
# writes into runs/. Used for the GPU leg in checkpoints/README.md:
#
#   OMNIGLOT_DIR=... BUDGET=480 bash checkpoints/train_on_gpu.sh
#
# 1. 5-way 1-shot: resumes the committed run; the meta-lr restarts at 1e-3 and decays again.
# 2. 5-way 5-shot: resumes the committed run, likewise.
# 3. 5-way 5-shot, starting from the 1-shot model (--init), a new run.
# 4. 20-way 1-shot, from scratch (the paper's meta-batch 16, inner lr 0.1, 5 inner steps).
set -euo pipefail
budget=${BUDGET:-480}
mkdir -p runs/logs
for run in 5way1shot-so-seed0 5way5shot-so-seed0; do
    [ -e "runs/$run" ] || cp -r "checkpoints/$run" runs/
done
train="python3 -m maml_helpers.train --device ${DEVICE:-cuda} --no-progress --no-download --threads 2
       --checkpoint-minutes 1 --time-budget $budget --iterations 200000"
# A short check first, so that a broken setup fails in seconds, not after the budget.
$train --iterations 3 --meta-batch 4 --val-every 3 --val-tasks 4 --out /tmp/gpu-check >/dev/null
$train --out runs/5way1shot-so-seed0 --resume --decay-start 20500 > runs/logs/5way1shot.log 2>&1 &
$train --out runs/5way5shot-so-seed0 --resume --decay-start 4000 > runs/logs/5way5shot.log 2>&1 &
$train --ways 5 --shots 5 --init checkpoints/5way1shot-so-seed0/model.pt --decay-start 0.3 \
       --out runs/5way5shot-so-from1shot-seed0 > runs/logs/5way5shot-from1shot.log 2>&1 &
$train --ways 20 --shots 1 --decay-start 0.5 --out runs/20way1shot-so-seed0 > runs/logs/20way1shot.log 2>&1 &
status=0
wait -n || status=$?; wait -n || status=$?; wait -n || status=$?; wait -n || status=$?
tail -n 3 runs/logs/*.log
exit $status
