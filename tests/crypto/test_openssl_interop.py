"""Interoperability with the OpenSSL 3 command-line tool, both directions.

Mind the distid trap: OpenSSL 3 signs and verifies SM2 with an *empty* ID unless told
``distid:1234567812345678``; every command here passes it explicitly.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ebank_auth.crypto import rsa, sm2, sm3
from ebank_auth.errors import InvalidSignature

pytestmark = [
    pytest.mark.openssl_cli,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed"),
]
DISTID = "distid:1234567812345678"


def _ossl(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=input, check=True, capture_output=True).stdout


def test_openssl_key_and_signature_verify_here(tmp_path: Path) -> None:
    key_pem = _ossl("genpkey", "-algorithm", "SM2")
    (tmp_path / "k.pem").write_bytes(key_pem)
    (tmp_path / "msg").write_bytes(b"transfer 100.00 CNY")
    sig = _ossl("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(tmp_path / "k.pem"),
                "-in", str(tmp_path / "msg"), "-pkeyopt", DISTID)  # fmt: skip
    key = sm2.load_pem_private_key(key_pem)
    pub_pem = _ossl("pkey", "-pubout", "-in", str(tmp_path / "k.pem"))
    pub = sm2.load_pem_public_key(pub_pem)
    assert pub == key.public_key()
    for backend in ("openssl", "pure"):
        pub.with_backend(backend).verify(sig, b"transfer 100.00 CNY")
    # the same signature checked under OpenSSL's default empty ID does not verify here
    with pytest.raises(InvalidSignature):
        pub.verify(sig, b"transfer 100.00 CNY", uid=b"")


def test_our_key_and_signature_verify_in_openssl(tmp_path: Path) -> None:
    for backend in ("openssl", "pure"):
        key = sm2.generate_private_key(backend=backend)
        (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
        (tmp_path / "key.pem").write_bytes(key.to_pem())
        (tmp_path / "msg").write_bytes(b"payee 6217001122334455")
        (tmp_path / "sig").write_bytes(key.sign(b"payee 6217001122334455"))
        out = _ossl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin",
                    "-inkey", str(tmp_path / "pub.pem"), "-in", str(tmp_path / "msg"),
                    "-sigfile", str(tmp_path / "sig"), "-pkeyopt", DISTID)  # fmt: skip
        assert b"Signature Verified Successfully" in out
        # OpenSSL reads our PKCS#8 and derives the same public key
        assert (
            _ossl("pkey", "-in", str(tmp_path / "key.pem"), "-pubout") == key.public_key().to_pem()
        )


def test_encryption_both_ways(tmp_path: Path) -> None:
    key = sm2.generate_private_key()
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
    (tmp_path / "ct").write_bytes(key.public_key().encrypt(b"session key 1234"))
    assert _ossl("pkeyutl", "-decrypt", "-inkey", str(tmp_path / "key.pem"),
                 "-in", str(tmp_path / "ct")) == b"session key 1234"  # fmt: skip
    ct = _ossl("pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
               input=b"from openssl")  # fmt: skip
    assert key.decrypt(ct) == b"from openssl"
    assert key.with_backend("pure").decrypt(ct) == b"from openssl"


def test_encrypted_pkcs8_both_ways(tmp_path: Path) -> None:
    plain = _ossl("genpkey", "-algorithm", "SM2")
    (tmp_path / "k.pem").write_bytes(plain)
    enc = _ossl("pkcs8", "-topk8", "-in", str(tmp_path / "k.pem"), "-passout", "pass:open sesame")
    ours = sm2.load_pem_private_key(enc, "open sesame")
    assert ours.to_bytes() == sm2.load_pem_private_key(plain).to_bytes()
    (tmp_path / "ours.pem").write_bytes(ours.to_pem("another pw", iterations=2000))
    text = _ossl("pkey", "-in", str(tmp_path / "ours.pem"), "-passin", "pass:another pw", "-pubout")
    assert text == ours.public_key().to_pem()


def test_sec1_ec_private_key_from_openssl(tmp_path: Path) -> None:
    sec1 = _ossl("ecparam", "-name", "SM2", "-genkey")  # EC PARAMETERS + EC PRIVATE KEY blocks
    key = sm2.load_pem_private_key(sec1)
    key.public_key().verify(key.sign(b"x"), b"x")


def test_rsa_signatures_both_ways(tmp_path: Path) -> None:
    k = rsa.generate_private_key(2048)
    (tmp_path / "k.pem").write_bytes(k.to_pem())
    (tmp_path / "pub.pem").write_bytes(k.public_key().to_pem())
    (tmp_path / "msg").write_bytes(b"rsa message")
    (tmp_path / "sig").write_bytes(k.sign(b"rsa message", hash=rsa.Hash.SHA256))
    out = _ossl("dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"),
                "-signature", str(tmp_path / "sig"), str(tmp_path / "msg"))  # fmt: skip
    assert b"Verified OK" in out
    sig = _ossl("dgst", "-sha256", "-sign", str(tmp_path / "k.pem"), str(tmp_path / "msg"))
    k.public_key().verify(sig, b"rsa message", hash=rsa.Hash.SHA256)
    # OpenSSL 3.0's RSA provider refuses SM3 ("digest not allowed"), so check sm3WithRSA at
    # the RSA level: the recovered DigestInfo holds SM3(m).  Its OID is 1.2.156.10197.1.504
    # (sm3WithRSAEncryption), which is what OpenSSL's own DigestInfo table emits for SM3 and
    # what OpenSSL-based peers expect — not the bare SM3 OID .401 (see docs/crypto.md).
    (tmp_path / "sig").write_bytes(k.sign(b"rsa message", hash=rsa.Hash.SM3))
    info = _ossl("pkeyutl", "-verifyrecover", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
                 "-in", str(tmp_path / "sig"))  # fmt: skip
    from asn1crypto import algos
    from asn1crypto.core import OctetString, Sequence

    class DigestInfo(Sequence):
        _fields = [("alg", algos.DigestAlgorithm), ("digest", OctetString)]

    parsed = DigestInfo.load(info)
    assert parsed["alg"]["algorithm"].dotted == "1.2.156.10197.1.504"
    assert parsed["digest"].native == sm3.digest(b"rsa message")
    pss = _ossl("dgst", "-sha256", "-sign", str(tmp_path / "k.pem"), "-sigopt", "rsa_padding_mode:pss",
                "-sigopt", "rsa_pss_saltlen:digest", str(tmp_path / "msg"))  # fmt: skip
    k.public_key().verify(pss, b"rsa message", padding=rsa.Padding.PSS)
