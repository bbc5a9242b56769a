#!/usr/bin/env bash
# The ebank-auth command-line walk-through (integrators; the bank demo is scripts/demo.sh):
#   1. the crypto self-test on every backend, and an SM2 sign/verify round trip;
#   2. the software USB Key behind a real pcscd (vpcd reader): on-token key generation,
#      confirm-and-sign of a transfer shown on the token, verification of the signature,
#      and a transfer the customer rejects on the token.
# Everything runs in a temporary directory. The token runs behind an isolated pcscd of its own
# (ebank_auth.usbkey.emulator.sandbox): a system pcscd is never touched, and as root vpcd's port
# lives in a private network namespace. Both are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }

if [ "${1:-}" = "--token-part" ]; then  # inside the sandbox: part 2 only
  work=$2
  token_part=1
else
  bash scripts/bootstrap.sh
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  token_part=""
fi
export EBANK_AUTH_TOKEN_STATE="$work/token"

if [ -z "$token_part" ]; then

say "1. National algorithms: self-test on every backend"
step ebank-auth selftest
step ebank-auth crypto sm2 keygen --out "$work/alice.key.pem" --public-key-out "$work/alice.pub.pem"
printf 'login challenge 7f3a9c\n' > "$work/challenge.txt"
step ebank-auth crypto sm2 sign --key "$work/alice.key.pem" --in "$work/challenge.txt" --out "$work/challenge.sig"
step ebank-auth crypto sm2 verify --public-key "$work/alice.pub.pem" --in "$work/challenge.txt" --signature "$work/challenge.sig"
fi

if [ -z "$token_part" ]; then
  # part 2 runs again inside an isolated pcscd (own socket; as root also its own network
  # namespace, so vpcd's card port is never reachable from outside this machine) with the
  # software token inserted; the sandbox stops both when it ends
  python -m ebank_auth.usbkey.emulator.sandbox --token-state "$EBANK_AUTH_TOKEN_STATE" \
    -- bash "$0" --token-part "$work"
  exit $?
fi

say "2. USB Key (V盾): the software token behind a real pcscd"
step ebank-auth token list
step ebank-auth token --emulator info
export EBANK_AUTH_PIN=314159   # the software token's factory user PIN (a hidden prompt without it)
step ebank-auth token --emulator key generate --algorithm sm2 --public-key-out "$work/token.pub.pem"
cat > "$work/tx.json" <<'JSON'
{"tx_id": "T20261122001", "tx_type": "transfer", "payer_account": "6222000011112222",
 "payee_account": "6222000033334444", "payee_name": "张三", "amount": "1234.50",
 "currency": "CNY", "timestamp": "2026-11-22T10:30:00+08:00", "memo": "房租"}
JSON
step ebank-auth token --emulator sign --tx "$work/tx.json" --signature-out "$work/tx.sig" --signed-out "$work/tx.bin"
say "The bank verifies the signature over exactly the bytes the token showed"
step ebank-auth crypto sm2 verify --public-key "$work/token.pub.pem" --in "$work/tx.bin" --signature "$work/tx.sig"

say "A transfer the customer rejects on the token (memo REJECT makes the simulated customer press reject)"
sed -e 's/T20261122001/T20261122002/' -e 's/房租/REJECT/' "$work/tx.json" > "$work/tx2.json"
if ebank-auth token --emulator sign --tx "$work/tx2.json" --signature-out "$work/tx2.sig"; then
  echo "UNEXPECTED: a rejected transaction was signed" >&2; exit 1
else
  echo "refused as expected: nothing was signed"
fi
step ebank-auth token --emulator pin status
say "demo finished (the sandbox stops the token and pcscd)"
