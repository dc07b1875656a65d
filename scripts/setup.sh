#!/usr/bin/env bash
# Create .venv with chunksync and its test dependencies installed (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_system.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip setuptools && .venv/bin/python -m pip install -q -e '.[test]'; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "setup failed: see the pip output above" >&2
  exit 1
fi
rm -f "$log"
