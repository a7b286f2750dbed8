#!/bin/bash
# go5: one device session (~540 s wall), most important first, each part bounded by `timeout` against one deadline:
#   1. device_check.py --skip speed recipe --update (correctness + cce; the speed and recipe sections kept from the
#      committed benchmarks/results/cuda-nvidia-h200/device_check.json);
#   2. next_item_study.py: content+id (GRAM, 1epoch interval) vs ID-based SASRec, CCE, Beauty-shaped data with new
#      releases (cold-start items), warm / cold-start / popularity and the encoder counters per epoch;
#   3. next_item_study.py: the Beauty-shaped ID rows (ce, cce, ce_sampled, cce_sampled), with what time is left.
# The data of parts 2 and 3 is generated in the background (single-threaded numpy, one core each) while part 1 uses
# the GPU. Everything lands under $OUT: results.tgz (all results folders and per-run logs) plus the logs.
# SMOKE=1 bash .whl/go5.sh: the same commands on the CPU at tiny sizes (OUT defaults to /tmp/go5_smoke).
set -u
START=$(date +%s)
BUDGET=${BUDGET:-530}
left() { echo $((START + BUDGET - $(date +%s))); }
# cap MAX RESERVE: MAX seconds, or fewer so that RESERVE seconds remain before the deadline.
cap() { local l; l=$(($(left) - $2)); if [ "$1" -lt "$l" ]; then echo "$1"; else echo "$l"; fi; }
stamp() { echo "[go5 +$(($(date +%s) - START)) s] $*"; }
quiet() { grep --line-buffered -v -e "Generating" -e "examples/s" -e "^Map" -e "^Filter"; }

if [ -n "${SMOKE:-}" ]; then
  OUT=${OUT:-/tmp/go5_smoke}
  mkdir -p "$OUT"
  export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/.whl/site:$PWD/src
  DEV="--device cpu --threads 1"
  CHECK="--device cpu --quick"
  P2="--scale beauty=0.05 --items beauty=300 --max-epochs beauty=1 --batch-size 64"
  P3="--scale beauty=0.05 --items beauty=300 --max-epochs beauty=1 --batch-size 64"
  P3_LOSSES="cce ce"
  W=/tmp/go5_smoke_work
else
  W_="$(ls .whl/*.whl)"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-packages \
    $W_ || exit 1
  export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site-packages:$PWD/.whl/site:$PWD/src
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.txt" 2>&1
  DEV="--device cuda"
  CHECK="--device cuda"
  P2="--bf16 --max-epochs beauty=4"
  P3="--max-epochs beauty=50"
  P3_LOSSES="cce ce cce_sampled ce_sampled"
  W=/tmp/go5_work
fi
R=$W/results
mkdir -p "$R"
# The data of part 2 (new releases) and of part 3 (none), as the study runs will ask for it.
P2_DATA="--datasets beauty --new-item-fraction 0.02 --workdir $W/content"
P3_DATA="--datasets beauty --workdir $W/beauty"
stamp "start; python $(python3 -c 'import sys; print(sys.version.split()[0])')"

# Background: generate and load both datasets (one core each, BLAS single-threaded as the generator is; the
# CPU only, the GPU is part 1's).
( OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout -k 5 240 python3 benchmarks/next_item_study.py \
    --data-only --device cpu --threads 1 $P2_DATA $P2 2>&1 | quiet > "$OUT/data_content.log" ) &
DATA2=$!
( OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout -k 5 300 python3 benchmarks/next_item_study.py \
    --data-only --device cpu --threads 1 $P3_DATA $P3 2>&1 | quiet > "$OUT/data_beauty.log" ) &
DATA3=$!

pack() {
  rm -rf "$R/content_logs" "$R/beauty_logs"
  cp -r "$W"/content/next_item_study/logs "$R/content_logs" 2>/dev/null
  cp -r "$W"/beauty/next_item_study/logs "$R/beauty_logs" 2>/dev/null
  tar czf "$OUT/results.tgz" -C "$W" results 2>/dev/null
}

# 1. Correctness and cce on the device; the other sections kept from the committed report.
mkdir -p "$R/device_check"
cp benchmarks/results/cuda-nvidia-h200/device_check.json benchmarks/results/cuda-nvidia-h200/device_check.md \
  "$R/device_check/"
T=$(cap 150 20)
stamp "part 1: device_check (timeout $T s)"
timeout -k 5 "$T" python3 benchmarks/device_check.py $CHECK --skip speed recipe --update \
  --output-dir "$R/device_check" --workdir "$W/device_check_work" 2>&1 | quiet > "$OUT/device_check.log"
stamp "part 1 exit ${PIPESTATUS[0]}"
grep -v "^|" "$OUT/device_check.log" | tail -8
pack

# 2. Content-based (hybrid content+id, GRAM 1epoch) vs ID-based SASRec with CCE, cold-start items, popularity floor.
wait $DATA2
stamp "part 2 data: $(tail -1 "$OUT/data_content.log")"
T=$(cap 330 20)
stamp "part 2: next_item_study content+id vs id (timeout $T s)"
timeout -k 5 "$T" python3 benchmarks/next_item_study.py $DEV $P2_DATA $P2 --losses cce --item-encoders id content+id \
  --program-args='--gram_interval 1epoch --encoder_epochs 1' --output-dir "$R/content_beauty" 2>&1 | quiet \
  > "$OUT/study_content.log"
stamp "part 2 exit ${PIPESTATUS[0]}"
grep -e "^\[" -e "^- " "$OUT/study_content.log" | tail -12
pack

# 3. The Beauty-shaped ID rows, with the time left (the partial JSON keeps the runs that finished).
wait $DATA3
stamp "part 3 data: $(tail -1 "$OUT/data_beauty.log")"
T=$(cap 600 12)
if [ "$T" -ge 45 ]; then
  stamp "part 3: next_item_study Beauty ID rows (timeout $T s)"
  timeout -k 5 "$T" python3 benchmarks/next_item_study.py $DEV $P3_DATA $P3 --losses $P3_LOSSES \
    --output-dir "$R/beauty_id" 2>&1 | quiet > "$OUT/study_beauty.log"
  stamp "part 3 exit ${PIPESTATUS[0]}"
  grep -e "^\[" -e "^- " "$OUT/study_beauty.log" | tail -8
else
  stamp "part 3 skipped: $T s left"
fi
pack
stamp "done"
