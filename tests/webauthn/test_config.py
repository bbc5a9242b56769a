"""Configuration pieces that need no fido2, and the lazy loading of the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ebank_auth.policy import Factor
from ebank_auth.webauthn import UserVerification, user_verification_for

SRC = Path(__file__).resolve().parents[2] / "src"


def test_uv_asked_for_when_a_missing_clause_takes_only_passkey_uv() -> None:
    f = Factor
    assert (
        user_verification_for([frozenset({f.PASSKEY_UV, f.SMS_CODE})]) is UserVerification.REQUIRED
    )
    assert (
        user_verification_for([frozenset({f.PASSKEY, f.PASSKEY_UV})]) is UserVerification.PREFERRED
    )
    assert user_verification_for([]) is UserVerification.PREFERRED


def test_the_package_imports_without_fido2_and_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['fido2'] = None\n"
        "import ebank_auth.webauthn as w\n"
        "w.RelyingParty('bank.example', 'Bank', ('https://bank.example',))\n"
        "assert 'fido2' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "try:\n"
        "    w.PasskeyServer\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    ).stdout
    assert out.startswith("ConfigurationError") and "ebank-auth[webauthn]" in out
