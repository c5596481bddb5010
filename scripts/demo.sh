#!/usr/bin/env bash
# Sets everything up, starts the local sandbox mail server, sends an apology through it,
# and shows it arriving in the interviewer's inbox. No account or network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ws=$(mktemp -d /tmp/mailer-demo-XXXX)
trap 'cd "$ws" && mailer sandbox stop >/dev/null 2>&1 || true' EXIT
cd "$ws"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "mailer init: a fresh workspace in $ws"
mailer init . | tail -n 6
step "mailer sandbox start: a private Dovecot + SMTP server on 127.0.0.1"
mailer sandbox start
yesterday=$(date -d yesterday +%F)
step "mailer --sandbox send: the apology for yesterday's missed interview"
mailer --sandbox send --situation illness --to interviewer@sandbox.test \
  --interviewer "Ana Ruiz" --company "Acme" --role "Data Engineer" \
  --interview "$yesterday 10:00" --free "$(date -d '+5 days' +%F) 09:00-12:00" \
  --note "I have kept the afternoon of every day this week free, in case one suits you." --yes
step "The interviewer's inbox (read over IMAP, as a mail client would)"
mailer sandbox inbox interviewer@sandbox.test
step "Sending it again is refused: one apology per interview"
mailer --sandbox send --situation illness --to interviewer@sandbox.test \
  --interviewer "Ana Ruiz" --company "Acme" --role "Data Engineer" \
  --interview "$yesterday 10:00" --yes >/dev/null || true
step "mailer --sandbox status"
mailer --sandbox status
step "Done. The sandbox is stopped on exit; run 'mailer sandbox start' in a workspace to keep one."
