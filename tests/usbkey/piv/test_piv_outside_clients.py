"""The software token's PIV applet driven by clients none of us wrote — OpenSC
(``opensc-tool``, ``pkcs11-tool`` with ``opensc-pkcs11.so``), ``yubico-piv-tool`` and OpenSSL
(through ``libengine-pkcs11-openssl``) — and by our own PIV session, through a real, isolated
pcscd + vpcd.

yubico-piv-tool 2.2.0 (Debian 12) cannot ``selfsign-certificate`` with OpenSSL 3 (it fails
before sending any APDU, on real YubiKeys too), so certificates for the generated keys are
issued with ``openssl x509 -new -force_pubkey`` and imported with ``-a import-certificate``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.display import AutoReject
from ebank_auth.usbkey.emulator.piv_applet import PivApplet
from ebank_auth.usbkey.piv_protocol import DEFAULT_PIN, PivAlgorithm, Slot
from ebank_auth.usbkey.vendor.piv import open_piv
from plugins.pcscd import PcscdVpcd

pytestmark = pytest.mark.pcsc

OPENSC_MODULE = next(
    (
        p
        for p in (
            "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
            "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
            "/usr/lib/opensc-pkcs11.so",
        )
        if Path(p).exists()
    ),
    None,
)


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (apt-get install opensc yubico-piv-tool)")


@pytest.fixture
def inserted(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[tuple[PivApplet, Path]]:
    router = token_card(tmp_path / "token", AutoReject())
    applet = router.applet(PivApplet)
    assert isinstance(applet, PivApplet)
    with pcscd_vpcd.inserted(router, reader=0):
        yield applet, tmp_path


def _run(pcscd_vpcd: PcscdVpcd, *cmd: str, cwd: Path) -> str:
    proc = subprocess.run(
        list(cmd),
        env=pcscd_vpcd.subprocess_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_yubico_piv_tool_and_opensc_generate_sign_and_openssl_verifies(
    inserted: tuple[PivApplet, Path], pcscd_vpcd: PcscdVpcd
) -> None:
    _need("yubico-piv-tool", "pkcs11-tool", "opensc-tool", "openssl")
    applet, work = inserted
    run = lambda *c: _run(pcscd_vpcd, *c, cwd=work)  # noqa: E731
    ypt = ("yubico-piv-tool", "-r", "Virtual PCD 00 00")

    assert "Virtual PCD 00 00" in run("opensc-tool", "--list-readers")
    assert run("opensc-tool", "-r", "0", "-a").strip()  # the ATR

    status = run(*ypt, "-a", "status")
    assert f"Serial Number:\t{applet.serial}" in status and "PIN tries left:\t3" in status
    run(*ypt, "-a", "verify-pin", "-P", DEFAULT_PIN)

    # keys generated as yubico-piv-tool does it (GENERATE ASYMMETRIC KEY PAIR, default mgmt key)
    run(*ypt, "-a", "generate", "-s", "9a", "-A", "RSA2048", "-o", "pub9a.pem")
    run(*ypt, "-a", "generate", "-s", "9c", "-A", "ECCP256", "-o", "pub9c.pem")
    run(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test CA", "-days", "30",
    )  # fmt: skip
    for slot in ("9a", "9c"):
        run(
            "openssl", "x509", "-new", "-subj", f"/CN=slot {slot}", "-force_pubkey",
            f"pub{slot}.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "30",
            "-out", f"cert{slot}.pem",
        )  # fmt: skip
        run(*ypt, "-a", "import-certificate", "-s", slot, "-i", f"cert{slot}.pem")
    status = run(*ypt, "-a", "status")
    assert "Slot 9a:" in status and "Slot 9c:" in status and "ECCP256" in status

    # yubico-piv-tool signs with each key and checks against the certificate
    for slot in ("9a", "9c"):
        out = run(*ypt, "-a", "verify-pin", "-P", DEFAULT_PIN, "-a", "test-signature",
                  "-s", slot, "-i", f"cert{slot}.pem")  # fmt: skip
        assert "Successful" in out or "successful" in out

    # attestation (YubiKey F9): chains to the attestation certificate in slot f9
    run(*ypt, "-a", "attest", "-s", "9c", "-o", "att9c.pem")
    run(*ypt, "-a", "read-certificate", "-s", "f9", "-o", "f9.pem")
    text = run("openssl", "x509", "-in", "att9c.pem", "-noout", "-text")
    assert "ebank-auth PIV Attestation 9c" in text and "1.3.6.1.4.1.41482.3.7" in text

    # OpenSC's PKCS#11 module: list, objects, the built-in test, sign + OpenSSL verifies
    assert OPENSC_MODULE is not None
    p11 = ("pkcs11-tool", "--module", OPENSC_MODULE)
    assert "Virtual PCD 00 00" in run(*p11, "-L")
    objects = run(*p11, "-O")
    assert "Card Holder Unique Identifier" in objects
    assert "No errors" in run(*p11, "-l", "-p", DEFAULT_PIN, "-t")
    (work / "data.txt").write_bytes(b"transfer 100 CNY to 6222 0000 1111\n")
    run(*p11, "-l", "-p", DEFAULT_PIN, "--sign", "-m", "SHA256-RSA-PKCS", "--id", "01",
        "-i", "data.txt", "-o", "sig9a.bin")  # fmt: skip
    assert "Verified OK" in run(
        "openssl", "dgst", "-sha256", "-verify", "pub9a.pem", "-signature", "sig9a.bin",
        "data.txt",
    )  # fmt: skip
    run(*p11, "-l", "-p", DEFAULT_PIN, "--sign", "-m", "ECDSA-SHA256", "--id", "02",
        "--signature-format", "openssl", "-i", "data.txt", "-o", "sig9c.bin")  # fmt: skip
    assert "Verified OK" in run(
        "openssl", "dgst", "-sha256", "-verify", "pub9c.pem", "-signature", "sig9c.bin",
        "data.txt",
    )  # fmt: skip


def test_pin_retries_and_unblock_with_yubico_piv_tool(
    inserted: tuple[PivApplet, Path], pcscd_vpcd: PcscdVpcd
) -> None:
    _need("yubico-piv-tool")
    applet, work = inserted
    ypt = ("yubico-piv-tool", "-r", "Virtual PCD 00 00")
    env = pcscd_vpcd.subprocess_env()
    for _ in range(3):
        proc = subprocess.run([*ypt, "-a", "verify-pin", "-P", "999999"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert proc.returncode != 0
    assert applet.state.pin.remaining == 0
    _run(pcscd_vpcd, *ypt, "-a", "unblock-pin", "-P", "12345678", "-N", "654321", cwd=work)
    _run(pcscd_vpcd, *ypt, "-a", "verify-pin", "-P", "654321", cwd=work)
    assert applet.state.pin.remaining == 3


def test_our_piv_session_through_pcscd(
    inserted: tuple[PivApplet, Path], pcscd_vpcd: PcscdVpcd
) -> None:
    applet, _ = inserted
    with open_piv(pcscd_vpcd.readers[0]) as card:
        assert card.serial == applet.serial
        assert card.defaults_in_use().any_default
        card.authenticate()
        info = card.generate(Slot.SIGNATURE, PivAlgorithm.RSA2048)  # 256-byte blocks: chaining
        card.verify_pin(DEFAULT_PIN)
        sig = card.sign_message(b"hello", "9c")
        from ebank_auth.crypto import keys

        keys.verify_data(info.any_public_key(), keys.SignatureAlgorithm.SHA256_RSA, sig, b"hello")
        att = card.attest_slot("9c")  # longer than 256 bytes: 61xx + GET RESPONSE
        assert len(att.certificate_der) > 256
