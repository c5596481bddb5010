#!/usr/bin/env bash
# Installs everything mailer needs on a fresh Debian/Ubuntu machine: the Dovecot packages the
# sandbox and tests use, PostgreSQL for the store's tests, a virtualenv in .venv, and mailer
# with its dev tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for bin in /usr/sbin/dovecot /usr/lib/dovecot/lmtp /usr/lib/dovecot/imap; do
  [ -e "$bin" ] || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: Dovecot is missing; run as root (or: sudo apt-get install -y dovecot-imapd dovecot-lmtpd)" >&2
    exit 1
  fi
  echo "setup: installing dovecot-imapd and dovecot-lmtpd"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd dovecot-lmtpd >/dev/null
fi
# The tests start a private PostgreSQL (tests/postgres.py) from Debian's binaries.
if ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: PostgreSQL is missing; run as root (or: sudo apt-get install -y postgresql)" >&2
    exit 1
  fi
  echo "setup: installing postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# The tests install the wheel as an ordinary user, who cannot run root's own Python (often under
# /root): they use Debian's python3 with its venv module, so make sure it is there.
if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null &&
   ! /usr/bin/python3 -c 'import ensurepip, venv' > /dev/null 2>&1; then
  echo "setup: installing python3-venv (the tests' ordinary user needs it)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
echo "setup: installing mailer and its dependencies into .venv (log: .venv/setup.log)"
# pip's own chatter goes to a log; it is shown only if the install fails.
# The distribution used to be called "mailer" (a name taken on PyPI): drop such an install
# first, or uninstalling it later would take the shared `mailer` script with it.
.venv/bin/python -m pip uninstall -q -y mailer > /dev/null 2>&1 || true
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e '.[dev]'; } > .venv/setup.log 2>&1; then
  cat .venv/setup.log >&2
  echo "setup: pip install failed (see above)" >&2
  exit 1
fi
.venv/bin/mailer --version
