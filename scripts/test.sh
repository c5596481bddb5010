#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite (unit + integration against a real
# Dovecot and SMTP server on 127.0.0.1) and ruff. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check mailer tests bench
MAILER_REQUIRE_INTEGRATION=1 .venv/bin/python -m pytest -p no:cacheprovider "$@"
