#!/usr/bin/env bash
# The main job on the embedded defaults: SQLite ledger, a local store under .demo/,
# and a simulated recorder (real H.264/AAC recordings made with PyAV) unless
# DOCKD_DEMO_SOURCE points at a real recorder's mount point.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=.demo
mkdir -p "$DEMO"
cat > "$DEMO/dockd.toml" <<TOML
[station]
unit = "Demo Station"
id = "demo"
timezone = "Asia/Shanghai"

[store]
root = "store"

[ledger]
url = "sqlite:///ledger.sqlite3"
TOML
export DOCKD_CONFIG="$PWD/$DEMO/dockd.toml"
dockd() { "$BIN/dockd" "$@"; }

source_dir=${DOCKD_DEMO_SOURCE:-}
if [ -z "$source_dir" ]; then
  source_dir="$DEMO/recorder"
  if [ ! -d "$source_dir" ]; then
    echo "== no recorder given (DOCKD_DEMO_SOURCE): simulating one in $source_dir"
    "$BIN/python" fixtures/make_recorder.py "$source_dir" --vendor a >/dev/null
  fi
fi

dockd config check
dockd ledger migrate  # the ledger is made here: reading commands never create one
if ! dockd devices list --format json | grep -q '"DV-0001"'; then
  echo "== registering recorder DV-0001 and officer 012345"
  dockd devices add DV-0001 --serial ZFY2024000123 --brand Demo --model BWC-1
  dockd officers add 012345 --name "Zhang Wei"
  dockd assign DV-0001 012345 --from 2026-01-01
fi

echo "== docking the recorder: dockd ingest $source_dir"
dockd ingest "$source_dir" 2>"$DEMO/ingest.log" || true
echo "== docking it again: nothing is stored twice"
dockd ingest "$source_dir" 2>>"$DEMO/ingest.log" || true
echo "== what the store holds ($DEMO/store)"
(cd "$DEMO/store" && find . -path ./.incoming -prune -o -type f -printf '%M %8s  %p\n' | sort -k3)
echo "== what the ledger says"
COLUMNS=${COLUMNS:-160} dockd ledger query
echo "== open alerts (damaged or empty recordings are stored, flagged and reported)"
COLUMNS=${COLUMNS:-160} dockd alerts list
echo "== structured log of the run: $DEMO/ingest.log"
