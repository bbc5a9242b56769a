"""Every signer works with any SigningKey, not just our software key classes.

``ForeignKey`` stands in for a key on a USB Key, a two-party SM2 key or a PKCS#11 key:
it is none of our classes, has no scalar ``d`` and no PEM form, and can only do what
the protocol promises — ``public_key()`` and ``sign_with(algorithm, data)``.  It signs
a CA hierarchy (root, intermediate, leaf), a CSR (proof of possession), a certificate
issued from that CSR, a CRL and CMS SignedData; ebank-auth and the OpenSSL CLI then
verify what it signed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ebank_auth.crypto import cms, rsa, sm2, x509
from ebank_auth.crypto.keys import (
    PublicKey,
    SignatureAlgorithm,
    SigningKey,
    SoftwareKey,
    private_key_to_pem,
)
from ebank_auth.crypto.x509 import KeyUsage
from ebank_auth.errors import EncodingError, UnsupportedAlgorithm
from pki.helpers import DISTID, run


class ForeignKey:
    """A signing key that only speaks the protocol (delegates to a hidden software key)."""

    def __init__(self, inner: SoftwareKey) -> None:
        self.__inner = inner
        self.signed: list[SignatureAlgorithm] = []

    def public_key(self) -> PublicKey:
        return self.__inner.public_key()

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        self.signed.append(algorithm)
        return self.__inner.sign_with(algorithm, data)


def _foreign(kind: str) -> ForeignKey:
    return ForeignKey(sm2.generate_private_key() if kind == "sm2" else rsa.generate_private_key())


@pytest.fixture(scope="module", params=["sm2", "rsa"])
def hierarchy(request: pytest.FixtureRequest) -> dict[str, object]:
    kind = request.param
    root_key, sub_key, user_key = (_foreign(kind) for _ in range(3))
    root = x509.CertificateAuthority.create_root(f"CN={kind} Token Root,O=Bank,C=CN", root_key)
    sub = root.create_intermediate(f"CN={kind} Token CA,O=Bank,C=CN", sub_key)
    csr = x509.build_csr(f"CN={kind} Token User,O=Bank,C=CN", user_key)
    leaf = sub.issue_from_csr(csr)
    crl = sub.issue_crl([12345], crl_number=3)
    return {
        "kind": kind,
        "root": root,
        "sub": sub,
        "user_key": user_key,
        "csr": csr,
        "leaf": leaf,
        "crl": crl,
    }


def test_foreign_key_is_a_signing_key_and_not_one_of_ours() -> None:
    key = _foreign("sm2")
    assert isinstance(key, SigningKey)
    assert not isinstance(key, (sm2.SM2PrivateKey, rsa.RSAPrivateKey))
    assert not hasattr(key, "to_pem") and not hasattr(key, "sign")
    with pytest.raises(EncodingError, match="cannot be exported"):
        private_key_to_pem(key)  # type: ignore[arg-type]


def test_ebank_auth_validates_what_a_foreign_key_signed(hierarchy: dict[str, object]) -> None:
    root: x509.CertificateAuthority = hierarchy["root"]  # type: ignore[assignment]
    sub: x509.CertificateAuthority = hierarchy["sub"]  # type: ignore[assignment]
    leaf: x509.Certificate = hierarchy["leaf"]  # type: ignore[assignment]
    crl: x509.CertificateRevocationList = hierarchy["crl"]  # type: ignore[assignment]
    csr: x509.CertificateSigningRequest = hierarchy["csr"]  # type: ignore[assignment]
    csr.verify()
    crl.verify_signed_by(sub.certificate)
    path = x509.verify_chain(
        leaf,
        [sub.certificate],
        [root.certificate],
        crls=[crl],
        required_key_usage=KeyUsage.DIGITAL_SIGNATURE,
    )
    assert path == (leaf, sub.certificate, root.certificate)
    assert root.key.signed and sub.key.signed  # type: ignore[attr-defined]


@pytest.mark.parametrize("detached", [False, True])
def test_cms_signed_by_a_foreign_key(hierarchy: dict[str, object], detached: bool) -> None:
    root: x509.CertificateAuthority = hierarchy["root"]  # type: ignore[assignment]
    sub: x509.CertificateAuthority = hierarchy["sub"]  # type: ignore[assignment]
    user_key: ForeignKey = hierarchy["user_key"]  # type: ignore[assignment]
    leaf: x509.Certificate = hierarchy["leaf"]  # type: ignore[assignment]
    before = len(user_key.signed)
    der = cms.sign(
        b"pay 100 CNY", cms.Signer(user_key, leaf, (sub.certificate,)), detached=detached
    )
    assert len(user_key.signed) == before + 1
    content = cms.verify(
        der, content=b"pay 100 CNY" if detached else None, trust_roots=[root.certificate]
    )
    assert content == b"pay 100 CNY"


def test_a_key_refuses_an_algorithm_it_cannot_produce() -> None:
    key = _foreign("sm2")
    with pytest.raises(UnsupportedAlgorithm, match="SM2_SM3 only"):
        x509.build_csr("CN=x", key, signature_algorithm=SignatureAlgorithm.SHA256_RSA)


@pytest.mark.openssl_cli
def test_openssl_verifies_what_a_foreign_key_signed(
    hierarchy: dict[str, object], openssl_bin: str, tmp_path: Path
) -> None:
    root: x509.CertificateAuthority = hierarchy["root"]  # type: ignore[assignment]
    sub: x509.CertificateAuthority = hierarchy["sub"]  # type: ignore[assignment]
    leaf: x509.Certificate = hierarchy["leaf"]  # type: ignore[assignment]
    csr: x509.CertificateSigningRequest = hierarchy["csr"]  # type: ignore[assignment]
    crl: x509.CertificateRevocationList = hierarchy["crl"]  # type: ignore[assignment]
    (tmp_path / "root.pem").write_bytes(root.certificate.to_pem())
    (tmp_path / "sub.pem").write_bytes(sub.certificate.to_pem())
    (tmp_path / "leaf.pem").write_bytes(leaf.to_pem())
    (tmp_path / "r.csr").write_bytes(csr.to_pem())
    (tmp_path / "c.crl").write_bytes(crl.to_pem())
    if hierarchy["kind"] == "sm2":
        # OpenSSL 3.0 applies the SM2 ID to one signature per run: check link by link
        run([openssl_bin, "verify", "-vfyopt", DISTID, "-CAfile", "root.pem", "sub.pem"], tmp_path)
        run(
            [
                openssl_bin,
                "verify",
                "-vfyopt",
                DISTID,
                "-partial_chain",
                "-CAfile",
                "sub.pem",
                "-purpose",
                "any",
                "leaf.pem",
            ],
            tmp_path,
        )
        run([openssl_bin, "req", "-in", "r.csr", "-verify", "-vfyopt", DISTID, "-noout"], tmp_path)
        return
    run(
        [openssl_bin, "verify", "-CAfile", "root.pem", "-untrusted", "sub.pem", "leaf.pem"],
        tmp_path,
    )
    run([openssl_bin, "req", "-in", "r.csr", "-verify", "-noout"], tmp_path)
    out = run([openssl_bin, "crl", "-in", "c.crl", "-CAfile", "sub.pem", "-noout"], tmp_path)
    assert "verify OK" in out.stdout + out.stderr
    user_key: ForeignKey = hierarchy["user_key"]  # type: ignore[assignment]
    der = cms.sign(b"transfer 100 CNY", cms.Signer(user_key, leaf, (sub.certificate,)))
    (tmp_path / "s.der").write_bytes(der)
    run(
        [
            openssl_bin,
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "s.der",
            "-CAfile",
            "root.pem",
            "-purpose",
            "any",
            "-out",
            "out.txt",
        ],
        tmp_path,
    )
    assert (tmp_path / "out.txt").read_bytes() == b"transfer 100 CNY"
