#!/usr/bin/env bash
# Validates docker-compose.yml offline: `docker-compose config` (Compose
# 1.29.2 from PyPI, in a virtualenv under ~/.cache/floe/tools) checks the
# file against the Compose schema and resolves it, without a container
# engine. The images are neither pulled nor built here.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"
venv="$FLOE_CACHE/tools/compose-1.29.2"
if [ ! -x "$venv/bin/docker-compose" ]; then
  log "installing docker-compose 1.29.2 into $venv (once)"
  python3 -m venv "$venv"
  # PyYAML 5.3.1 first: compose 1.29 wants PyYAML < 6, and 5.4 no longer
  # builds with current Cython
  "$venv/bin/pip" install -q "PyYAML==5.3.1" >&2
  "$venv/bin/pip" install -q "docker-compose==1.29.2" >&2
fi
"$venv/bin/docker-compose" -f "$ROOT/docker-compose.yml" config -q
log "docker-compose.yml is valid: $("$venv/bin/docker-compose" -f "$ROOT/docker-compose.yml" config --services | tr '\n' ' ')"
