"""Interop with the real OpenSSL 3 CLI, both directions.

OpenSSL 3.0 facts these tests work around (see docs/pki.md):
* ``openssl verify -vfyopt distid:…`` applies the SM2 ID to the first signature it checks
  only, so an SM2 chain is checked link by link (``-partial_chain``);
* ``openssl crl`` has no ``-vfyopt``, so SM2 CRL signatures are checked with ``pkeyutl``;
* the CLI cannot make SM2 CMS, so CMS interop is RSA only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ebank_auth.crypto import cms, x509
from ebank_auth.crypto.x509 import KeyUsage, ValidationReason
from pki.helpers import DISTID, Pki, run

pytestmark = pytest.mark.openssl_cli

CA_EXT = (
    "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
)
LEAF_EXT = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
CA_CONF = """
[ ca ]
default_ca = test
[ test ]
database = {d}/index.txt
crlnumber = {d}/crlnumber
default_md = sm3
default_crl_days = 5
"""


@pytest.fixture(scope="module")
def openssl_pki(openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SM2 root → sub → leaf made entirely by OpenSSL, a CSR and a CRL revoking serial 4."""
    d = tmp_path_factory.mktemp("osl")
    o = openssl_bin
    for name in ("root", "sub", "leaf", "other"):
        run([o, "genpkey", "-algorithm", "SM2", "-out", f"{name}.key"], d)
    run(
        [
            o,
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-sm3",
            "-sigopt",
            DISTID,
            "-subj",
            "/C=CN/O=OpenSSL Test/CN=OSL Root",
            "-days",
            "3650",
            "-out",
            "root.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        d,
    )
    (d / "ca.ext").write_text(CA_EXT)
    (d / "leaf.ext").write_text(LEAF_EXT)
    run(
        [
            o,
            "req",
            "-new",
            "-key",
            "sub.key",
            "-sm3",
            "-sigopt",
            DISTID,
            "-subj",
            "/C=CN/O=OpenSSL Test/CN=OSL Sub",
            "-out",
            "sub.csr",
        ],
        d,
    )
    run(
        [
            o,
            "x509",
            "-req",
            "-in",
            "sub.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-sm3",
            "-sigopt",
            DISTID,
            "-vfyopt",
            DISTID,
            "-extfile",
            "ca.ext",
            "-days",
            "1000",
            "-set_serial",
            "2",
            "-out",
            "sub.pem",
        ],
        d,
    )
    for name, serial in (("leaf", "3"), ("other", "4")):
        run(
            [
                o,
                "req",
                "-new",
                "-key",
                f"{name}.key",
                "-sm3",
                "-sigopt",
                DISTID,
                "-subj",
                f"/C=CN/O=OpenSSL Test/CN=OSL {name}",
                "-out",
                f"{name}.csr",
            ],
            d,
        )
        run(
            [
                o,
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "sub.pem",
                "-CAkey",
                "sub.key",
                "-sm3",
                "-sigopt",
                DISTID,
                "-vfyopt",
                DISTID,
                "-extfile",
                "leaf.ext",
                "-days",
                "365",
                "-set_serial",
                serial,
                "-out",
                f"{name}.pem",
            ],
            d,
        )
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text(CA_CONF.format(d=d))
    run(
        [
            o,
            "ca",
            "-config",
            "ca.cnf",
            "-revoke",
            "other.pem",
            "-keyfile",
            "sub.key",
            "-cert",
            "sub.pem",
        ],
        d,
    )
    run(
        [
            o,
            "ca",
            "-config",
            "ca.cnf",
            "-gencrl",
            "-keyfile",
            "sub.key",
            "-cert",
            "sub.pem",
            "-sigopt",
            DISTID,
            "-out",
            "sub.crl",
        ],
        d,
    )
    return d


def _cert(d: Path, name: str) -> x509.Certificate:
    return x509.load_certificate((d / name).read_bytes())


def test_openssl_sm2_chain_verifies_with_ebank_auth(openssl_pki: Path) -> None:
    d = openssl_pki
    result = x509.validate_chain(
        _cert(d, "leaf.pem"),
        [_cert(d, "sub.pem")],
        [_cert(d, "root.pem")],
        required_key_usage=KeyUsage.DIGITAL_SIGNATURE,
    )
    assert result.valid, result.message
    assert _cert(d, "leaf.pem").subject == "CN=OSL leaf,O=OpenSSL Test,C=CN"


def test_openssl_sm2_csr_verifies_with_ebank_auth(openssl_pki: Path) -> None:
    req = x509.load_csr((openssl_pki / "leaf.csr").read_bytes())
    req.verify()
    assert req.subject == "CN=OSL leaf,O=OpenSSL Test,C=CN"


def test_openssl_sm2_crl_verifies_with_ebank_auth(openssl_pki: Path) -> None:
    d = openssl_pki
    crl = x509.load_crl((d / "sub.crl").read_bytes())
    crl.verify_signed_by(_cert(d, "sub.pem"))
    assert crl.is_revoked(4) and not crl.is_revoked(3)
    chain = ([_cert(d, "sub.pem")], [_cert(d, "root.pem")])
    assert x509.validate_chain(_cert(d, "other.pem"), *chain, crls=[crl]).reason is (
        ValidationReason.REVOKED
    )
    assert x509.validate_chain(_cert(d, "leaf.pem"), *chain, crls=[crl]).valid


def test_ebank_auth_sm2_chain_verifies_with_openssl(
    sm2_pki: Pki, openssl_bin: str, tmp_path: Path
) -> None:
    (tmp_path / "root.pem").write_bytes(sm2_pki.root.certificate.to_pem())
    (tmp_path / "sub.pem").write_bytes(sm2_pki.sub.certificate.to_pem())
    (tmp_path / "leaf.pem").write_bytes(sm2_pki.leaf.to_pem())
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
    # a leaf signed by someone else is refused by OpenSSL too
    other = x509.CertificateAuthority.create_root(sm2_pki.sub.certificate.subject, sm2_pki.leaf_key)
    (tmp_path / "forged.pem").write_bytes(
        other.issue("CN=x", sm2_pki.leaf_key.public_key()).to_pem()
    )
    proc = run(
        [
            openssl_bin,
            "verify",
            "-vfyopt",
            DISTID,
            "-partial_chain",
            "-CAfile",
            "sub.pem",
            "forged.pem",
        ],
        tmp_path,
        check=False,
    )
    assert proc.returncode != 0


def test_ebank_auth_sm2_csr_verifies_with_openssl(
    sm2_pki: Pki, openssl_bin: str, tmp_path: Path
) -> None:
    req = x509.build_csr("CN=Bob,O=Bank,C=CN", sm2_pki.leaf_key)
    (tmp_path / "r.csr").write_bytes(req.to_pem())
    out = run(
        [openssl_bin, "req", "-in", "r.csr", "-verify", "-vfyopt", DISTID, "-noout", "-subject"],
        tmp_path,
    )
    assert "CN = Bob" in out.stdout + out.stderr


def test_ebank_auth_sm2_crl_verifies_with_openssl(
    sm2_pki: Pki, openssl_bin: str, tmp_path: Path
) -> None:
    crl = sm2_pki.sub.issue_crl([sm2_pki.leaf.serial_number], crl_number=7)
    (tmp_path / "c.crl").write_bytes(crl.to_pem())
    text = run([openssl_bin, "crl", "-in", "c.crl", "-noout", "-text"], tmp_path).stdout
    assert f"{sm2_pki.leaf.serial_number:X}" in text.replace(":", "").upper()
    assert "SM2-with-SM3" in text
    # OpenSSL's crl command has no -vfyopt: check the signature with pkeyutl and the SM2 ID
    (tmp_path / "tbs.bin").write_bytes(crl.tbs_der)
    (tmp_path / "sig.bin").write_bytes(crl.signature)
    (tmp_path / "pub.pem").write_bytes(sm2_pki.sub.key.public_key().to_pem())
    verify = [
        openssl_bin,
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        "tbs.bin",
        "-sigfile",
        "sig.bin",
    ]
    run(verify, tmp_path)
    (tmp_path / "tbs.bin").write_bytes(crl.tbs_der[:-1] + bytes([crl.tbs_der[-1] ^ 1]))
    assert run(verify, tmp_path, check=False).returncode != 0


def test_ebank_auth_rsa_chain_and_crl_verify_with_openssl(
    rsa_pki: Pki, openssl_bin: str, tmp_path: Path
) -> None:
    (tmp_path / "root.pem").write_bytes(rsa_pki.root.certificate.to_pem())
    (tmp_path / "sub.pem").write_bytes(rsa_pki.sub.certificate.to_pem())
    (tmp_path / "leaf.pem").write_bytes(rsa_pki.leaf.to_pem())
    run(
        [openssl_bin, "verify", "-CAfile", "root.pem", "-untrusted", "sub.pem", "leaf.pem"],
        tmp_path,
    )
    crl = rsa_pki.sub.issue_crl([rsa_pki.leaf.serial_number])
    root_crl = rsa_pki.root.issue_crl([])
    (tmp_path / "crls.pem").write_bytes(crl.to_pem() + root_crl.to_pem())
    proc = run(
        [
            openssl_bin,
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "crls.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "sub.pem",
            "leaf.pem",
        ],
        tmp_path,
        check=False,
    )
    assert proc.returncode != 0 and "revoked" in (proc.stdout + proc.stderr)


def test_openssl_rsa_cms_verifies_with_ebank_auth(
    rsa_pki: Pki, openssl_bin: str, tmp_path: Path
) -> None:
    (tmp_path / "leaf.pem").write_bytes(rsa_pki.leaf.to_pem())
    (tmp_path / "leaf.key").write_bytes(x509.private_key_to_pem(rsa_pki.leaf_key))
    (tmp_path / "sub.pem").write_bytes(rsa_pki.sub.certificate.to_pem())
    (tmp_path / "msg.txt").write_bytes(b"transfer 100 CNY")
    for extra, name in (([], "att.der"), (["-nodetach"], "att2.der"), (["-noattr"], "noattr.der")):
        run(
            [
                openssl_bin,
                "cms",
                "-sign",
                "-binary",
                "-in",
                "msg.txt",
                "-signer",
                "leaf.pem",
                "-inkey",
                "leaf.key",
                "-certfile",
                "sub.pem",
                "-outform",
                "DER",
                "-nodetach",
                "-md",
                "sha256",
                "-out",
                name,
                *extra,
            ],
            tmp_path,
        )
        result = cms.validate((tmp_path / name).read_bytes(), trust_roots=rsa_pki.roots)
        assert result.valid, (name, result.message)
        assert result.content == b"transfer 100 CNY"
    run(
        [
            openssl_bin,
            "cms",
            "-sign",
            "-binary",
            "-in",
            "msg.txt",
            "-signer",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "sub.pem",
            "-outform",
            "PEM",
            "-out",
            "det.pem",
        ],
        tmp_path,
    )
    det = (tmp_path / "det.pem").read_bytes()
    assert cms.validate(det, content=b"transfer 100 CNY", trust_roots=rsa_pki.roots).valid
    assert cms.validate(det, content=b"transfer 900 CNY", trust_roots=rsa_pki.roots).reason is (
        cms.CMSReason.CONTENT_TAMPERED
    )


@pytest.mark.parametrize("detached", [False, True])
def test_ebank_auth_rsa_cms_verifies_with_openssl(
    rsa_pki: Pki, openssl_bin: str, tmp_path: Path, detached: bool
) -> None:
    (tmp_path / "root.pem").write_bytes(rsa_pki.root.certificate.to_pem())
    (tmp_path / "msg.txt").write_bytes(b"transfer 100 CNY")
    der = cms.sign(
        b"transfer 100 CNY",
        cms.Signer(rsa_pki.leaf_key, rsa_pki.leaf, (rsa_pki.sub.certificate,)),
        detached=detached,
    )
    (tmp_path / "s.der").write_bytes(der)
    args = [
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
    ]
    if detached:
        args += ["-content", "msg.txt"]
    run(args, tmp_path)
    assert (tmp_path / "out.txt").read_bytes() == b"transfer 100 CNY"
    if detached:
        (tmp_path / "msg.txt").write_bytes(b"transfer 900 CNY")
        assert run(args, tmp_path, check=False).returncode != 0


def test_ebank_auth_sm2_cms_checked_with_openssl_primitives(
    sm2_pki: Pki, openssl_bin: str, tmp_path: Path
) -> None:
    """OpenSSL 3.0 cannot verify SM2 CMS, so check ours with its parser and SM2/SM3 primitives."""
    content = b"transfer 100 CNY to 6222"
    der = cms.sign(content, cms.Signer(sm2_pki.leaf_key, sm2_pki.leaf, (sm2_pki.sub.certificate,)))
    (tmp_path / "s.der").write_bytes(der)
    printed = run(
        [openssl_bin, "cms", "-cmsout", "-print", "-noout", "-inform", "DER", "-in", "s.der"],
        tmp_path,
    ).stdout
    assert "SM2-with-SM3" in printed or "1.2.156.10197.1.501" in printed
    assert "sm3" in printed.lower()
    # the signed attributes, re-tagged as SET OF, carry the SM2 signature (with the default ID)
    si = cms._ContentInfo.load(der)["content"].parse(cms._SignedData)["signer_infos"][0]
    (tmp_path / "attrs.der").write_bytes(b"\x31" + si["signed_attrs"].dump()[1:])
    (tmp_path / "sig.der").write_bytes(si["signature"].native)
    (tmp_path / "pub.pem").write_bytes(sm2_pki.leaf_key.public_key().to_pem())
    run(
        [
            openssl_bin,
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            DISTID,
            "-in",
            "attrs.der",
            "-sigfile",
            "sig.der",
        ],
        tmp_path,
    )
    # and the messageDigest attribute is OpenSSL's SM3 of the content
    (tmp_path / "content").write_bytes(content)
    digest = run([openssl_bin, "dgst", "-sm3", "-r", "content"], tmp_path).stdout.split()[0]
    md = next(
        a["values"][0].native for a in si["signed_attrs"] if a["type"].native == "message_digest"
    )
    assert md.hex() == digest
