#!/usr/bin/env bash
# The ebank-auth demo: the reference bank app with a USB Key, all on this machine.
#
#   1. an isolated pcscd (own socket; as root vpcd's port in a private network namespace) with
#      the software USB Key inserted, whose screen and button are a web page ("the token's
#      screen", Approve / Reject);
#   2. the local signing agent (ebank-auth agent serve, loopback only) that the bank's pages
#      use to reach the token;
#   3. the bank app (examples/bank_app, SQLite) at http://127.0.0.1:8000/login.
#
# State (the bank's database and keys, the token) lives in examples/bank_app/var/ and survives
# restarts; delete that directory to start afresh.  Ctrl-C stops everything.
#
# Options: --check  start everything, check each part answers, stop (what the tests run)
# Environment: BANK_PORT (8000), AGENT_PORT (8765), TOKEN_SCREEN_PORT (8766), PHONE_PORT (8767),
#              DEMO_STATE (dir)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"

if [ "${1:-}" = "--inside" ]; then  # inside the sandbox: pcscd runs, the token is inserted
  shift
  check=${1:-}
  state=$DEMO_STATE
  bank_url="http://127.0.0.1:$BANK_PORT"
  export EBANK_AUTH_PIN=314159  # the software token's factory user PIN (for the staff key below)

  # the back office's staff member signs in with the token's LOGIN key: make it once
  if [ ! -s "$state/staff-login.pub.pem" ]; then
    ebank-auth token --emulator key generate --usage login --container login \
      --public-key-out "$state/staff-login.pub.pem" >/dev/null
  fi
  unset EBANK_AUTH_PIN

  pids=()
  cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
  trap cleanup EXIT

  # the software phone (phone shield): its page is the phone's screen; the bank trusts its
  # TEST attestation root
  ebank-auth phone page --state "$state/phone" --port "$PHONE_PORT" --json \
    >"$state/phone.json" 2>"$state/phone.log" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$state/phone/attestation-ca.pem" ] && [ -s "$state/phone.json" ] && break; sleep 0.1; done
  ebank-auth agent serve --port "$AGENT_PORT" --origin "$bank_url" \
    --origin "http://localhost:$BANK_PORT" --emulator \
    >"$state/agent.log" 2>&1 &
  pids+=($!)
  python examples/bank_app/run.py --host 127.0.0.1 --port "$BANK_PORT" --state "$state/bank" \
    --agent-url "http://127.0.0.1:$AGENT_PORT" --emulator-token "$EBANK_AUTH_TOKEN_STATE" \
    --staff-key "$state/staff-login.pub.pem" --emulator-phone "$state/phone" \
    >"$state/bank.log" 2>&1 &
  pids+=($!)

  wait_url() {  # wait_url URL [ORIGIN]: until it answers (any HTTP status)
    for _ in $(seq 1 100); do
      if python - "$1" "${2:-}" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], headers={"Origin": sys.argv[2]} if sys.argv[2] else {})
try:
    urllib.request.urlopen(req, timeout=2)
except urllib.error.HTTPError:
    pass
PY
      sleep 0.2
    done
    echo "demo: $1 did not answer; see the logs in $state" >&2
    return 1
  }
  wait_url "$bank_url/login"
  wait_url "http://127.0.0.1:$AGENT_PORT/v1/status" "$bank_url"
  screen_url=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' \
    "$EBANK_AUTH_TOKEN_STATE/screen.json")
  wait_url "$screen_url"
  phone_url=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' \
    "$state/phone.json")

  cat <<EOF

  ================================================================================
   ebank-auth demo bank is running
  ================================================================================
   Bank:            $bank_url/login          (English: $bank_url/login?lang=en)
                    passkeys need a domain name: http://localhost:$BANK_PORT/login
   Token's screen:  $screen_url
                    (the USB Key's display and its Approve / Reject buttons: keep it
                     open in a second window; press Approve there when it shows a transfer)
   Signing agent:   http://127.0.0.1:$AGENT_PORT  (loopback only; answers $bank_url)
   SMS outbox:      $bank_url/demo/outbox      (demo mode: where SMS codes "arrive")
   Software phone:  $phone_url
                    (the phone shield's screen: open the enrolment link of the bank's
                     "Phone shield" page there; confirm transfers on it)

   Customers (first login asks for a new password, e.g. Harbour7Lantern):
     zhangsan / DemoPass2026   personal, 52,000.00 CNY
     lisi     / DemoPass2026   personal,  8,000.00 CNY
     hengtai  / DemoPass2026   corporate, 3,000,000.00 CNY (every payment: USB Key)
   USB Key PIN: 314159.  Bind the key on the "USB Key" page, then transfer 50,000 or more
   (or anything as hengtai): the page asks the token to sign, the token's screen shows
   the transfer, you press Approve or Reject.
   Phone shield: the "Phone shield" page enrols the software phone; tier-2 transfers
   (5,000 to 50,000) are then confirmed on the phone's page.
   Back office: $bank_url/staff/login   admin / Staff-Pass-2026, then the USB Key PIN.

   State: $state  (delete it to start afresh).  Ctrl-C stops everything.
  ================================================================================
EOF
  if [ "$check" = "--check" ]; then
    wait_url "$phone_url"
    echo "demo check passed: bank, agent, token's screen and software phone answer"
    exit 0
  fi
  wait -n "${pids[@]}"
  echo "demo: a part stopped; see $state/bank.log and $state/agent.log" >&2
  exit 1
fi

bash scripts/bootstrap.sh
export BANK_PORT=${BANK_PORT:-8000} AGENT_PORT=${AGENT_PORT:-8765}
export EBANK_AUTH_TOKEN_SCREEN_PORT=${TOKEN_SCREEN_PORT:-8766} PHONE_PORT=${PHONE_PORT:-8767}
export DEMO_STATE=${DEMO_STATE:-$ROOT/examples/bank_app/var}
export EBANK_AUTH_TOKEN_STATE=$DEMO_STATE/token
mkdir -p "$DEMO_STATE" && chmod 700 "$DEMO_STATE"
exec python -m ebank_auth.usbkey.emulator.sandbox --token-state "$DEMO_STATE/token" \
  --card ebank_auth.usbkey.emulator.screen_page:screen_token \
  -- bash "$0" --inside "${1:-}"
