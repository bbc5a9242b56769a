"""GENERATE KEY never silently replaces a key (issue 10 item 3).

Replacing the key of a container drops its certificate and can change its usage (a transaction
key becomes a login key that signs any digest), so the token refuses it unless the host asks
for replacement explicitly *and* the admin (SO) PIN is verified in the session.
"""

from __future__ import annotations

import pytest

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import TokenError
from ebank_auth.usbkey.protocol import ContainerUsage
from ebank_auth.usbkey.session import TokenSession


def _certify(session: TokenSession, container: str = "sign") -> bytes:
    ca = x509.CertificateAuthority.create_root("CN=Bank Test CA", sm2.generate_private_key())
    cert = ca.issue("CN=Alice", session.public_key(container).public_key()).to_der()
    session.import_certificate(cert, container)
    return cert


def test_user_pin_alone_cannot_replace_a_key_or_change_its_usage(signer: TokenSession) -> None:
    """Attack: with only the user PIN (malware that watched it being typed), re-run GENERATE KEY
    on the transaction container ``sign`` with usage *login*.  Before the fix the token replaced
    the key, dropped its certificate and the new login key signed any digest — including
    e = SM3(Z ‖ transaction) — without display or button.  Now it is refused and nothing
    changes."""
    before = signer.public_key("sign")
    cert = _certify(signer)
    with pytest.raises(TokenError) as excinfo:
        signer.generate_key("sign", usage=ContainerUsage.LOGIN)
    assert "admin" in str(excinfo.value)  # the message says how to replace on purpose
    after = signer.public_key("sign")
    assert after == before
    assert after.usage is ContainerUsage.TRANSACTION
    assert signer.export_certificate("sign") == cert
