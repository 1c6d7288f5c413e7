#!/bin/bash
# Start-up time and RSS of `glyphlab serve` (run by hand): from exec to the first 200 from /health, polled every 50 ms.
#   bash bench/serve_startup.sh VENV MODEL [SRC]
# VENV: a virtual environment with glyphlab[serve] (with or without torch); SRC (optional): a glyphlab source
# folder to run instead of the installed one (e.g. src, to compare two installs with the same code).
set -euo pipefail
venv=$1; model=$2; src=${3:-}
port=$((20000 + RANDOM % 20000))
log=$(mktemp)
start=$(date +%s.%N)
PYTHONPATH=$src "$venv/bin/python" -m glyphlab.cli serve "$model" --port "$port" --no-access-log >"$log" 2>&1 &
pid=$!
until curl -sf "localhost:$port/health" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.05
done
end=$(date +%s.%N)
rss=$(ps -o rss= -p "$pid")
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -f "$log"
echo "$(basename "$venv") $(basename "$model") $(echo "$end - $start" | bc) s, RSS $((rss / 1024)) MiB"
