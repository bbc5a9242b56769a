#!/usr/bin/env bash
# The ebank-auth demo: self-test of every crypto backend, then an SM2 sign/verify round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "ebank-auth demo (work files in $work)"
step ebank-auth selftest
step ebank-auth crypto sm2 keygen --out "$work/alice.key.pem" --pub "$work/alice.pub.pem"
printf '{"payer":"6222020200112233445","payee":"6217001122334455","amount":"1250.00","currency":"CNY"}\n' > "$work/tx.json"
step ebank-auth crypto sm3 "$work/tx.json"
step ebank-auth crypto sm2 sign --key "$work/alice.key.pem" --uid 1234567812345678 --in "$work/tx.json" --out "$work/tx.sig"
step ebank-auth crypto sm2 verify --pub "$work/alice.pub.pem" --uid 1234567812345678 --in "$work/tx.json" --sig "$work/tx.sig"
echo
echo "Now tamper with the amount and verify again (must be refused, exit 1):"
sed -i 's/1250.00/9250.00/' "$work/tx.json"
if ebank-auth crypto sm2 verify --pub "$work/alice.pub.pem" --in "$work/tx.json" --sig "$work/tx.sig"; then
  echo "UNEXPECTED: tampered data verified" >&2; exit 1
else
  echo "refused as expected"
fi
