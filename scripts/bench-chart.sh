#!/usr/bin/env bash
# Draws bench-freshness probe CSVs as a PNG (scripts/bench-chart.py says
# how); installs matplotlib into a venv under ~/.cache/floe/tools the
# first time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FLOE_TOOLS:-$HOME/.cache/floe/tools}/bench-charts"
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'matplotlib>=3.8,<4'
fi
exec "$venv/bin/python" "$ROOT/scripts/bench-chart.py" "$@"
