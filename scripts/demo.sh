#!/usr/bin/env bash
# Sets everything up, starts the local sandbox mail server and shows the whole loop:
#   1. an apology is sent and arrives;
#   2. a short follow-up delay passes with no reply, and one threaded follow-up goes out;
#   3. a second apology gets a reply, and its follow-up is cancelled;
#   4. a campaign file sends three apologies, and running it again sends none twice;
#   5. the status table.
# No account or network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
checkout=$PWD
ws=$(mktemp -d /tmp/mailer-demo-XXXX)
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  cd "$ws" && mailer sandbox stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
cd "$ws"
# Bold headings on a terminal only: piped or logged output stays plain text.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
wait_for() {  # wait_for "text" THREAD: poll the status until it shows the text (60 s at most)
  for _ in $(seq 1 120); do
    mailer --sandbox status "$2" | grep -q "$1" && return 0
    sleep 0.5
  done
  echo "demo: timed out waiting for '$1'" >&2; return 1
}

step "mailer init: a fresh workspace in $ws"
mailer init .
step "mailer sandbox start: a private Dovecot + SMTP server on 127.0.0.1"
mailer sandbox start
# A demo cannot wait 3 business days: follow up after 15 seconds, at any hour.
cat >> .mailer/sandbox/config/mailer.toml <<'TOML'

[follow_up]
wait = "15s"
window = "always"

[watch]
poll_interval = "2s"
TOML
# The last weekday before today, and a weekday at least three days ahead: interviews and
# free times fall on working days (the apology check warns about a weekend time).
weekday() { # STEP START: the first weekday from START days away, going STEP days at a time
  local d=$2
  until [ "$(date -d "$d days" +%u)" -le 5 ]; do d=$((d + $1)); done
  date -d "$d days" +%F
}
missed=$(weekday -1 -1)
free_day=$(weekday 1 3)

step "1. mailer --sandbox send: the apology for the interview missed on $missed"
mailer --sandbox send --situation illness --to interviewer@sandbox.test \
  --interviewer "Ana Ruiz" --salutation "Ms Ruiz" --company "Acme" --role "Data Engineer" \
  --interview "$missed 10:00" --free "$free_day 09:00-12:00" \
  --note "I am fully recovered, and I have kept some mornings free in case one suits you." --yes
step "The interviewer's inbox (read over IMAP, as a mail client would)"
mailer sandbox inbox interviewer@sandbox.test

step "2. mailer --sandbox daemon: watching for a reply; none comes..."
mailer --sandbox daemon > daemon.log 2>&1 &
daemon_pid=$!
wait_for "followed up" 1
mailer sandbox inbox interviewer@sandbox.test

step "3. A second apology; this time the interviewer answers"
mailer --sandbox send --situation transport --to recruiter@sandbox.test \
  --interviewer "Sam Lee" --company "Globex" --role "Analyst" \
  --interview "$missed 15:00" --yes | tail -n 3
mailer sandbox reply 2 --text "No problem - does Thursday at 10:00 work?"
wait_for "replied" 2
echo "The daemon saw the reply: thread 2 is replied, and its follow-up will never be sent."

step "4. A campaign: three apologies from one file, each sent once"
mkdir -p config/campaigns
cat > config/campaigns/week.toml <<TOML
[defaults]
situation = "illness"
note = "A fever kept me in bed all week; I am well again now."
free = ["$free_day 14:00-17:00"]

[throttle]
rate = 60

[[entries]]
to = "interviewer@sandbox.test"
interviewer = "Ana Ruiz"
company = "Initech"
role = "Data Analyst"
interview = "$missed 09:00"

[[entries]]
to = "interviewer@sandbox.test"
interviewer = "Ana Ruiz"
company = "Umbrella"
role = "Data Engineer"
interview = "$missed 11:30"

[[entries]]
to = "recruiter@sandbox.test"
interviewer = "Sam Lee"
company = "Hooli"
role = "Platform Engineer"
interview = "$missed 14:00"
TOML
mailer --sandbox campaign check week
mailer --sandbox campaign run week --yes
echo "Running it again sends nothing twice:"
mailer --sandbox campaign run week --yes

step "5. mailer --sandbox status"
mailer --sandbox status
step "What the daemon decided"
grep -E "follow-up|replied|human" daemon.log | sed 's/^[0-9-]* [0-9:,]* //'
step "Done. The sandbox stops on exit; the workspace stays in $ws."
echo "mailer is in $checkout/.venv/bin; to type plain 'mailer' in your shell:"
printf '  source %q\n' "$checkout/.venv/bin/activate"
