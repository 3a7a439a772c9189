#!/usr/bin/env bash
# Two checkouts of Strata measured at the same moments: an A/B of a change on a noisy machine.
#
#   bench/paired.sh DB CONCURRENCY SECONDS DIR_A DIR_B
#   bench/paired.sh sqlite 8 15 /tmp/before "$PWD"
#
# DB is `sqlite` or `postgres`; DIR_A and DIR_B are checkouts (e.g. `git worktree add --detach
# /tmp/before <rev>`), imported through PYTHONPATH with this checkout's virtualenv. Both servers
# (`python -m app serve`, API + worker, each on a fresh database) run at once pinned to CPU 0, and
# one closed-loop client each (the side by side's `loadgen.py`, POST /v1/runs + GET /wait) runs
# on CPU 1 for the same SECONDS. Sharing one CPU at the same moments, the two servers see the
# same drift of the machine, so their CPU per op compares directly where sequential runs of a
# server do not (this VM's speed moves by up to 1.5x within minutes). Run each pair twice, with
# the sides swapped, and compare CPU per op, not op/s: the printed lines are
#   A <op/s> op/s  cpu=<server CPU ms per op>
# STRATA_PYTHON_A / STRATA_PYTHON_B give a side its own interpreter (another virtualenv, to
# compare two versions of a dependency); both default to STRATA_PYTHON, else this checkout's.
# The client comes from the side by side's virtualenv ($PEER_VENV, default /tmp/strata-peer-venv;
# `../shared/bench-peers/side_by_side.sh` creates it).
set -u
[ $# -eq 5 ] || { sed -n 2,19p "$0"; exit 2; }
DB=$1; LEVEL=$2; DUR=$3; A=$4; B=$5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${STRATA_PYTHON:-$ROOT/.venv/bin/python}
PV=${PEER_VENV:-/tmp/strata-peer-venv}
LOADGEN=${LOADGEN:-$ROOT/../shared/bench-peers/loadgen.py}
[ -x "$PV/bin/python" ] || { echo "no $PV: run ../shared/bench-peers/side_by_side.sh once"; exit 1; }
BODY='{"composition":{"layers":[{"name":"prompt","type":"plain.prompt","config":{"prefix":"You are terse.","user":"Say hi"}},{"name":"history","type":"pydantic_ai.history"},{"name":"llm","type":"llm.test","config":{"reply":"hi"}}]}}'
WORK=$(mktemp -d /tmp/paired.XXXX)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

start() { # side checkout port python
  local dir="$WORK/$1" url
  mkdir -p "$dir"
  if [ "$DB" = sqlite ]; then url="sqlite+aiosqlite:///$dir/strata.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS strata_paired_$1" \
         -c "CREATE DATABASE strata_paired_$1" >/dev/null 2>&1
    url="postgresql+asyncpg://postgres@127.0.0.1:5432/strata_paired_$1"; fi
  (cd "$dir" && PYTHONPATH=$2 STRATA_DATABASE_URL=$url STRATA_LOG_LEVEL=warning \
     exec taskset -c 0 "$4" -m app serve --port "$3" > serve.log 2>&1) &
  PIDS+=($!)
}
start a "$A" 18031 "${STRATA_PYTHON_A:-$PY}"
start b "$B" 18032 "${STRATA_PYTHON_B:-$PY}"
for port in 18031 18032; do
  for _ in $(seq 120); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
done
client() { # side port
  local key pid
  key=$(grep -o 'sk-strata-[A-Za-z0-9_-]*' "$WORK/$1/serve.log" | head -1)
  pid=$(pgrep -f -- "--port $2" | head -1)
  taskset -c 1 "$PV/bin/python" "$LOADGEN" --duration "$DUR" --warmup 3 --out "$WORK/$1.jsonl" \
    --label "$1" --mode create-join --url "http://127.0.0.1:$2/v1/runs" --body "$BODY" \
    --header "Authorization: Bearer $key" \
    --join-url "http://127.0.0.1:$2/v1/runs/{id}/wait?timeout_seconds=30" \
    --endpoint "POST /v1/runs + GET /wait" -c "$LEVEL" --server-pid "$pid" > "$WORK/$1.out" 2>&1
}
client a 18031 & CA=$!
client b 18032 & CB=$!
wait $CA $CB
for side in a b; do
  line=$(grep -E "^$side " "$WORK/$side.out")
  echo "$(echo "$side" | tr ab AB) $(echo "$line" | grep -oE '[0-9.]+ op/s') $(echo "$line" | grep -oE ' cpu=[0-9.]+')"
done
