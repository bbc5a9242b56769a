#!/usr/bin/env bash
# The ebank-auth demo:
#   1. the crypto self-test on every backend, and an SM2 sign/verify round trip;
#   2. the software USB Key behind a real pcscd (vpcd reader): on-token key generation,
#      confirm-and-sign of a transfer shown on the token, verification of the signature,
#      and a transfer the customer rejects on the token.
# Everything runs in a temporary directory; a pcscd started here is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
started_pcscd=""
export EBANK_AUTH_TOKEN_STATE="$work/token"

cleanup() {
  ebank-auth emulator stop --state "$EBANK_AUTH_TOKEN_STATE" >/dev/null 2>&1 || true
  if [ -n "$started_pcscd" ]; then kill "$started_pcscd" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }

say "1. National algorithms: self-test on every backend"
step ebank-auth selftest
step ebank-auth crypto sm2 keygen --out "$work/alice.key.pem" --pub "$work/alice.pub.pem"
printf 'login challenge 7f3a9c\n' > "$work/challenge.txt"
step ebank-auth crypto sm2 sign --key "$work/alice.key.pem" --in "$work/challenge.txt" --out "$work/challenge.sig"
step ebank-auth crypto sm2 verify --pub "$work/alice.pub.pem" --in "$work/challenge.txt" --sig "$work/challenge.sig"

say "2. USB Key (V盾): the software token behind a real pcscd"
if ! pgrep -x pcscd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "pcscd is not running and this is not root: start pcscd (with vsmartcard-vpcd) and re-run" >&2
    exit 1
  fi
  pcscd --foreground >"$work/pcscd.log" 2>&1 &
  started_pcscd=$!
  sleep 0.5
fi
step ebank-auth emulator start --state "$EBANK_AUTH_TOKEN_STATE"
for _ in $(seq 50); do  # pcscd polls the virtual reader about every 0.4 s
  ebank-auth token list 2>/dev/null | grep -qv empty && break
  sleep 0.1
done
step ebank-auth token list
step ebank-auth token info
export EBANK_AUTH_PIN=314159   # the software token's factory user PIN (a hidden prompt without it)
step ebank-auth token key generate --alg sm2 --pub-out "$work/token.pub.pem"
cat > "$work/tx.json" <<'JSON'
{"tx_id": "T20261122001", "tx_type": "transfer", "payer_account": "6222000011112222",
 "payee_account": "6222000033334444", "payee_name": "张三", "amount": "1234.50",
 "currency": "CNY", "timestamp": "2026-11-22T10:30:00+08:00", "memo": "房租"}
JSON
step ebank-auth token sign --tx "$work/tx.json" --signature-out "$work/tx.sig" --signed-out "$work/tx.bin"
say "The bank verifies the signature over exactly the bytes the token showed"
step ebank-auth crypto sm2 verify --pub "$work/token.pub.pem" --in "$work/tx.bin" --sig "$work/tx.sig"

say "A transfer the customer rejects on the token (memo REJECT makes the simulated customer press reject)"
sed -e 's/T20261122001/T20261122002/' -e 's/房租/REJECT/' "$work/tx.json" > "$work/tx2.json"
if ebank-auth token sign --tx "$work/tx2.json" --signature-out "$work/tx2.sig"; then
  echo "UNEXPECTED: a rejected transaction was signed" >&2; exit 1
else
  echo "refused as expected: nothing was signed"
fi
step ebank-auth token pin status
step ebank-auth emulator stop --state "$EBANK_AUTH_TOKEN_STATE"
say "demo finished"
