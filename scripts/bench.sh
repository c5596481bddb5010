#!/usr/bin/env bash
# Runs every benchmark of bench/run_all.py (issue #14) and regenerates README's performance
# table. Installs what the benchmarks need first: mailer's .venv (scripts/setup.sh), Debian's
# postfix (preseeded, so apt does not ask; it is run only from a private directory, never
# from /etc), and mailmerge and psutil from PyPI into .venv. Idempotent.
#   bash scripts/bench.sh            # everything, 7-10 minutes on 2 cores
#   bash scripts/bench.sh --quick    # tiny sizes, a smoke run
# Other options go to bench/run_all.py (--smtp aiosmtpd, --reps N, --only status,check, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/mailer ] || bash scripts/setup.sh
if [ ! -x /usr/sbin/postfix ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench: postfix is missing; run as root, or pass --smtp aiosmtpd" >&2
  else
    echo "bench: installing postfix (not configured system-wide; the benchmark runs its own)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix > /dev/null
  fi
fi
if ! .venv/bin/python -c 'import psutil' 2> /dev/null || [ ! -x .venv/bin/mailmerge ]; then
  echo "bench: installing mailmerge and psutil into .venv"
  .venv/bin/python -m pip install -q mailmerge psutil
fi
exec .venv/bin/python bench/run_all.py "$@"
