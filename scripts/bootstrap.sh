#!/usr/bin/env bash
# Set up everything ebank-auth needs on a fresh Debian/Ubuntu machine, idempotently:
#  - as root: the Debian packages for PC/SC (pcscd, vpcd), OpenSSL CLI, OpenSC tools, Redis,
#    PostgreSQL (the tests start private clusters; the system cluster is not used);
#    xmlsec1 (XML signature interop tests);
#  - always: a virtual environment in .venv with ebank-auth (editable) and its extras.
# Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pcscd faketime libpcsclite-dev libssl-dev vsmartcard-vpcd opensc yubico-piv-tool libengine-pkcs11-openssl softhsm2 pcsc-tools swig redis-server postgresql openssl tzdata
              iproute2 util-linux gcc python3-venv python3-dev chromium chromium-driver xmlsec1)
PYTHON=${PYTHON:-python3}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: not root (or no apt-get): please install ${missing[*]}; continuing" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.ebank-auth-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing ebank-auth and its extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[dev,pcsc,hid,redis,postgres,app,docs,webauthn,xml,pkcs11]"
  touch "$stamp"
fi
