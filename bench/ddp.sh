#!/usr/bin/env bash
# cnn-small on MNIST in one process against two torchrun processes on gloo, one after the other in one run
# (docs/benchmarks.md, "Data-parallel training"). Run from the repository root, under the CPU lock:
#   PYTHONPATH=src flock /tmp/glyphlab-cpu.lock bash bench/ddp.sh [OUT] [SUBSET] [EPOCHS]
# One process uses every core (GLYPHLAB_NUM_THREADS = the core count), then one thread (one-1t); each of the
# two ranks half of the cores (glyphlab divides them among torchrun's ranks on a machine). Prints wall, CPU
# and accuracy of each.
set -euo pipefail
OUT=${1:-/tmp/glyphlab-ddp-bench}
SUBSET=${2:-12000}
EPOCHS=${3:-2}
PY=${PYTHON:-python}
DATA=${DATA_DIR:-/work/shared/data}
ARGS=(run --dataset mnist --data-dir "$DATA" --variant "subset:$SUBSET" --models cnn-small
      --param "cnn-small.epochs=$EPOCHS" --no-report)
rm -rf "$OUT" && mkdir -p "$OUT"
lscpu | grep -m1 "Model name"; grep -m1 -o "model[[:space:]]*: [0-9]*" /proc/cpuinfo; nproc
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  $(date -u +%H:%M:%S) UTC"
GLYPHLAB_NUM_THREADS=$(nproc) /usr/bin/time -f "one: %e s wall, %U s user, %S s sys, %P CPU" \
  "$PY" -m glyphlab "${ARGS[@]}" --out "$OUT/one" > "$OUT/one.log"
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)"
GLYPHLAB_NUM_THREADS=1 /usr/bin/time -f "one-1t: %e s wall, %U s user, %S s sys, %P CPU" \
  "$PY" -m glyphlab "${ARGS[@]}" --out "$OUT/one-1t" > "$OUT/one-1t.log"
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "two: %e s wall, %U s user, %S s sys, %P CPU" \
  "$PY" -m torch.distributed.run --nproc-per-node 2 --master-port "${PORT:-29741}" \
  -m glyphlab "${ARGS[@]}" --out "$OUT/two" > "$OUT/two.log" 2> >(grep -v "^\[\|^\*\|OMP\|^ *$" >&2)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)  $(date -u +%H:%M:%S) UTC"
for r in one one-1t two; do
  "$PY" - "$OUT/$r" <<'PYEOF'
import json, sys
from pathlib import Path
m = json.loads((Path(sys.argv[1]) / "models/cnn-small/metrics.json").read_text())
print(f"{Path(sys.argv[1]).name}: accuracy {m['accuracy']:.4f}, train {m['train_seconds']:.1f} s, "
      f"train CPU (rank 0) {m['train_cpu_seconds']:.1f} s, n_train {m['n_train']}")
PYEOF
done
