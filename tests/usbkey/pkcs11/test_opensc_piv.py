"""The PKCS#11 backend driving OpenSC's module (``opensc-pkcs11.so``, a module none of us
wrote) over the software token's PIV applet, through the real, isolated pcscd + vpcd: keys
generated through our PIV host session, then login with the PIV PIN, listing, signing and
verifying through PKCS#11 — and the card pulled out mid-operation."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ebank_auth.crypto import keys, x509
from ebank_auth.crypto.keys import SignatureAlgorithm
from ebank_auth.errors import CardNotPresent, NotSupportedByToken, PinIncorrect
from ebank_auth.usbkey.piv_protocol import DEFAULT_PIN, PivAlgorithm, Slot
from ebank_auth.usbkey.protocol import Algorithm
from ebank_auth.usbkey.token import PublicKeyInfo
from ebank_auth.usbkey.transport import pcsc
from ebank_auth.usbkey.vendor.piv import PivSigningKey, open_piv
from ebank_auth.usbkey.vendor.pkcs11 import Pkcs11SigningKey, open_pkcs11
from plugins.pcscd import PcscdVpcd

from .conftest import OPENSC_MODULE, need, need_pykcs11

pytestmark = pytest.mark.pcsc

DATA = b"login challenge 7f3a\n"


@dataclass
class CardProcess:
    """The software token served by ``ebank-auth emulator start --foreground`` in its own
    process: PyKCS11 holds the GIL during a PKCS#11 call, so a card answering from a thread
    of this process could not answer OpenSC at all (and a real card never runs here)."""

    proc: subprocess.Popen[str]
    reader: str
    made: dict[str, PublicKeyInfo]

    def pull_out(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        assert pcsc.wait_for_card(self.reader, 20, present=False)


@pytest.fixture
def piv_card(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[CardProcess]:
    """The software token in reader 0 with a P-256 key in 9A and an RSA-2048 key in 9C,
    generated through our PIV session, each with a self-signed certificate (OpenSC lists a
    PIV key through its certificate)."""
    need_pykcs11()
    need("OpenSC (opensc-pkcs11.so)", OPENSC_MODULE is not None)
    reader = pcscd_vpcd.readers[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebank_auth.cli", "emulator", "start", "--foreground",
         "--state", str(tmp_path / "token"), *pcscd_vpcd.emulator_args(0)],
        env=pcscd_vpcd.subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    card = CardProcess(proc, reader, {})
    try:
        assert pcsc.wait_for_card(reader, 30), "the emulator did not insert the token"
        with open_piv(reader) as piv:
            piv.authenticate()
            card.made["9a"] = piv.generate(Slot.AUTHENTICATION, PivAlgorithm.ECC_P256)
            card.made["9c"] = piv.generate(Slot.SIGNATURE, PivAlgorithm.RSA2048)
            for slot in ("9a", "9c"):
                piv.verify_pin(DEFAULT_PIN)
                key = PivSigningKey(piv, slot)
                cert = x509.build_certificate(
                    subject=f"CN=slot {slot}", public_key=key.public_key(), issuer_key=key,
                    valid_days=30,
                )  # fmt: skip
                piv.import_certificate(cert.to_der(), slot)
        yield card
    finally:
        card.pull_out()


def test_opensc_module_logs_in_lists_signs_and_we_verify(
    piv_card: CardProcess,
) -> None:
    made = piv_card.made
    assert OPENSC_MODULE is not None
    with open_pkcs11(OPENSC_MODULE, max_pin_retries=3) as tok:
        assert "Virtual PCD 00 00" in " ".join(
            s.description for s in tok.module.slots(token_present=True)
        )
        assert tok.can_confirm is False
        with pytest.raises(PinIncorrect) as wrong:
            tok.verify_pin("999999")
        # the count is what OpenSC's token flags allow (this OpenSC sets none for PIV after
        # one wrong PIN, so the message says the token does not tell)
        assert wrong.value.remaining == tok.pin_status().remaining <= 3
        if not tok.pin_flags().count_low:
            assert "does not say" in str(wrong.value)
        tok.verify_pin(DEFAULT_PIN)
        assert tok.pin_status().remaining == 3
        containers = {c.name: c for c in tok.list_containers()}
        by_alg = {c.algorithm: c for c in containers.values()}
        assert by_alg[Algorithm.ECC_P256].has_certificate and Algorithm.RSA2048 in by_alg
        # 9A (id 01): the P-256 key generated through our PIV session signs through PKCS#11
        assert tok.public_key("id:01").public_key_der == made["9a"].public_key_der
        signature = tok.sign_message(DATA, "id:01")
        keys.verify_data(
            made["9a"].any_public_key(), SignatureAlgorithm.ECDSA_SHA256, signature, DATA
        )
        signer = Pkcs11SigningKey(tok, "id:01")
        csr = x509.build_csr("CN=PIV through PKCS#11", signer)
        csr.verify()
        assert keys.public_key_equal(csr.public_key, made["9a"].any_public_key())
        # the certificate objects carry the keys' CKA_ID
        cert = x509.load_certificate(tok.export_certificate("id:01"))
        assert cert.subject == "CN=slot 9a"
        # 9C asks for the PIN before every signature (CKA_ALWAYS_AUTHENTICATE)
        with pytest.raises(NotSupportedByToken, match="every signature"):
            tok.sign_message(DATA, "id:02")


def test_card_pulled_out_mid_operation(
    piv_card: CardProcess,
) -> None:
    assert OPENSC_MODULE is not None
    with open_pkcs11(OPENSC_MODULE) as tok:
        tok.verify_pin(DEFAULT_PIN)
        tok.sign_message(DATA, "id:01")
        piv_card.pull_out()
        with pytest.raises(CardNotPresent):
            tok.sign_message(DATA, "id:01")
