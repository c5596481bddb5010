#!/usr/bin/env bash
# Sets everything up, then runs ruff and the test suite. Extra arguments go to pytest.
#   bash scripts/test.sh          every layer: unit, contract, and wire (against a real
#                                 Dovecot and SMTP server on 127.0.0.1); what CI runs
#   bash scripts/test.sh --fast   the unit and contract layers only (pytest -m "not wire");
#                                 sets up only if .venv cannot import mailer yet
# The layers are assigned in tests/conftest.py (see the README's Development section).
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi
if [ "$fast" = 0 ] || ! .venv/bin/python -c 'import mailer, xdist' > /dev/null 2>&1; then
  bash scripts/setup.sh
fi
.venv/bin/ruff check mailer tests bench
if [ "$fast" = 1 ]; then
  # One worker per core (pytest-xdist): these layers share nothing between tests but the
  # contract suite's mail stack, which each worker starts for itself on free ports.
  exec .venv/bin/python -m pytest -p no:cacheprovider -m "not wire" -n auto "$@"
fi
MAILER_REQUIRE_INTEGRATION=1 .venv/bin/python -m pytest -p no:cacheprovider "$@"
