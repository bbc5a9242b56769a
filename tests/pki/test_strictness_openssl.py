"""The new chain checks agree with the real ``openssl verify`` where it has an opinion.

Certificates are P-256, built with ``cryptography``'s x509 builder (OpenSSL 3.0's
``verify`` cannot check multi-level SM2 chains, see docs/pki.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ebank_auth.crypto import x509
from pki.helpers import run

pytestmark = pytest.mark.openssl_cli

NOW = dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> cx.Name:
    return cx.Name(
        [cx.NameAttribute(NameOID.COUNTRY_NAME, "CN"), cx.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _cert(
    subject: cx.Name,
    key: Any,
    issuer: cx.Name,
    issuer_key: Any,
    *,
    ca: bool,
    path_length: int | None = None,
    extra: list[tuple[Any, bool]] = (),  # type: ignore[assignment]
) -> cx.Certificate:
    b = (
        cx.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(cx.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(cx.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(cx.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            cx.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            cx.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key, hashes.SHA256())


def _write(d: Path, name: str, *certs: cx.Certificate) -> str:
    (d / name).write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return name


def _ours(leaf: cx.Certificate, inter: list[cx.Certificate], root: cx.Certificate) -> Any:
    der = serialization.Encoding.DER
    return x509.validate_chain(
        leaf.public_bytes(der), [c.public_bytes(der) for c in inter], [root.public_bytes(der)]
    )


def _openssl(openssl_bin: str, d: Path, leaf: str, inter: str, root: str) -> tuple[int, str]:
    proc = run([openssl_bin, "verify", "-CAfile", root, "-untrusted", inter, leaf], d, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_name_constraints_agree_with_openssl(openssl_bin: str, tmp_path: Path) -> None:
    """A sub-CA constrained to bank.example and 10.0.0.0/8 issues inside and outside."""
    rk, sk, lk = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert(_name("NC Root"), rk, _name("NC Root"), rk, ca=True)
    nc = cx.NameConstraints(
        permitted_subtrees=[
            cx.DNSName("bank.example"),
            cx.IPAddress(ipaddress.ip_network("10.0.0.0/8")),
        ],
        excluded_subtrees=None,
    )
    sub = _cert(_name("NC Sub"), sk, root.subject, rk, ca=True, path_length=0, extra=[(nc, True)])
    _write(tmp_path, "root.pem", root)
    _write(tmp_path, "sub.pem", sub)
    cases = {
        "in.pem": ([cx.DNSName("www.bank.example")], True),
        "dns-out.pem": ([cx.DNSName("www.evil.example")], False),
        "ip-out.pem": ([cx.IPAddress(ipaddress.ip_address("192.0.2.1"))], False),
    }
    for fname, (names, inside) in cases.items():
        leaf = _cert(
            _name(fname),
            lk,
            sub.subject,
            sk,
            ca=False,
            extra=[(cx.SubjectAlternativeName(names), False)],
        )
        _write(tmp_path, fname, leaf)
        rc, out = _openssl(openssl_bin, tmp_path, fname, "sub.pem", "root.pem")
        ours = _ours(leaf, [sub], root)
        assert (rc == 0) is inside, out
        assert ours.valid is inside, ours.message
        if not inside:
            assert "subtree violation" in out
            assert ours.reason is x509.ValidationReason.NAME_CONSTRAINTS_VIOLATION


def test_self_issued_rollover_agrees_with_openssl(openssl_bin: str, tmp_path: Path) -> None:
    """Under a pathlen:0 CA a self-issued (key rollover) certificate does not count,
    a real intermediate does: OpenSSL and ebank-auth both say so."""
    rk, sk, nk, lk = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    root = _cert(_name("PL Root"), rk, _name("PL Root"), rk, ca=True)
    sub = _cert(_name("PL Sub"), sk, root.subject, rk, ca=True, path_length=0)
    rollover = _cert(sub.subject, nk, sub.subject, sk, ca=True)
    leaf = _cert(_name("PL Leaf"), lk, sub.subject, nk, ca=False)
    _write(tmp_path, "root.pem", root)
    _write(tmp_path, "inter.pem", rollover, sub)
    _write(tmp_path, "leaf.pem", leaf)
    rc, out = _openssl(openssl_bin, tmp_path, "leaf.pem", "inter.pem", "root.pem")
    assert rc == 0, out
    ours = _ours(leaf, [rollover, sub], root)
    assert ours.valid, ours.message
    deeper = _cert(_name("PL Deeper"), nk, sub.subject, sk, ca=True)
    leaf2 = _cert(_name("PL Leaf2"), lk, deeper.subject, nk, ca=False)
    _write(tmp_path, "inter2.pem", deeper, sub)
    _write(tmp_path, "leaf2.pem", leaf2)
    rc, out = _openssl(openssl_bin, tmp_path, "leaf2.pem", "inter2.pem", "root.pem")
    assert rc != 0 and "path length" in out, out
    ours = _ours(leaf2, [deeper, sub], root)
    assert ours.reason is x509.ValidationReason.PATH_TOO_LONG, ours.message
