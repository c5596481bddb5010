#!/usr/bin/env bash
# Installs everything mailer needs on a fresh Debian/Ubuntu machine: the Dovecot packages the
# sandbox and tests use, a virtualenv in .venv, and mailer with its dev tools. Idempotent.
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

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
echo "setup: installing mailer and its dependencies into .venv"
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -vE "is ignored|^\s*$" || true
.venv/bin/mailer --version
