"""Interop of the signature formats with outside tools: xmlsec1 (XML) and openssl ts / cms.

RSA variants both ways.  SM2: xmlsec1 (1.2.37, Debian) has no SM2/SM3 transforms and
``openssl ts`` (3.0) can neither sign a token with an SM2 key (PKCS7 signing refuses the key
type) nor verify one (no way to pass the SM2 distinguishing ID); those tests run when the
tools learn SM2 and skip with the reason until then.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ebank_auth.crypto import cades, cms, tsp, xmldsig
from ebank_auth.crypto.keys import private_key_to_pem
from ebank_auth.crypto.tsp import TimestampReason
from ebank_auth.errors import TimestampVerificationError
from pki.helpers import Pki, Tsa, run

DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Transfer xmlns="urn:bank:pay" xml:lang="zh-CN"><Amount currency="CNY">100.00</Amount>\n'
    b"<!-- note --><Payee>Bob</Payee>\n</Transfer>\n"
)


def _pems(pki: Pki, d: Path) -> None:
    (d / "root.pem").write_bytes(pki.root.certificate.to_pem())
    (d / "sub.pem").write_bytes(pki.sub.certificate.to_pem())
    (d / "leaf.pem").write_bytes(pki.leaf.to_pem())
    (d / "leaf.key").write_bytes(private_key_to_pem(pki.leaf_key))


def _xmlsec_verify(xmlsec1: str, d: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run(
        [xmlsec1, "--verify", "--trusted-pem", "root.pem", "--untrusted-pem", "sub.pem", name],
        d,
        check=False,
    )


# ----------------------------------------------------------------------------- XML


@pytest.mark.parametrize("c14n", list(xmldsig.Canonicalization))
def test_xmlsec1_verifies_our_rsa_signatures(
    rsa_pki: Pki, xmlsec1_bin: str, tmp_path: Path, c14n: xmldsig.Canonicalization
) -> None:
    _pems(rsa_pki, tmp_path)
    signed = xmldsig.sign(DOC, rsa_pki.leaf_key, rsa_pki.leaf, canonicalization=c14n)
    (tmp_path / "signed.xml").write_bytes(signed)
    ok = _xmlsec_verify(xmlsec1_bin, tmp_path, "signed.xml")
    assert ok.returncode == 0 and "OK" in ok.stdout + ok.stderr, ok.stderr
    (tmp_path / "bad.xml").write_bytes(signed.replace(b"100.00", b"900.00"))
    assert _xmlsec_verify(xmlsec1_bin, tmp_path, "bad.xml").returncode != 0


TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<Transfer xmlns="urn:bank:pay"><Amount currency="CNY">100.00</Amount>
<Payee>Bob</Payee>
<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
<SignedInfo>
<CanonicalizationMethod Algorithm="{c14n}"/>
<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
<Reference URI="">
<Transforms>
<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>{extra}
</Transforms>
<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
<DigestValue/>
</Reference>
</SignedInfo>
<SignatureValue/>
<KeyInfo><X509Data/></KeyInfo>
</Signature>
</Transfer>
"""


@pytest.mark.parametrize("c14n", list(xmldsig.Canonicalization))
@pytest.mark.parametrize("explicit_transform", [False, True])
def test_we_verify_xmlsec1_rsa_signatures(
    rsa_pki: Pki,
    xmlsec1_bin: str,
    tmp_path: Path,
    c14n: xmldsig.Canonicalization,
    explicit_transform: bool,
) -> None:
    _pems(rsa_pki, tmp_path)
    extra = f'\n<Transform Algorithm="{c14n.value}"/>' if explicit_transform else ""
    (tmp_path / "tmpl.xml").write_text(TEMPLATE.format(c14n=c14n.value, extra=extra))
    run(
        [
            xmlsec1_bin,
            "--sign",
            "--privkey-pem",
            "leaf.key,leaf.pem,sub.pem",
            "--output",
            "signed.xml",
            "tmpl.xml",
        ],
        tmp_path,
    )
    signed = (tmp_path / "signed.xml").read_bytes()
    result = xmldsig.verify(signed, trust_roots=rsa_pki.roots)
    assert result.certificate == rsa_pki.leaf
    assert result.element.findtext("{urn:bank:pay}Payee") == "Bob"
    tampered = xmldsig.validate(signed.replace(b"Bob", b"Eve"), trust_roots=rsa_pki.roots)
    assert tampered.reason is xmldsig.XMLReason.DIGEST_MISMATCH


def test_xmlsec1_and_sm2(sm2_pki: Pki, xmlsec1_bin: str, tmp_path: Path) -> None:
    transforms = run([xmlsec1_bin, "--list-transforms"], tmp_path).stdout.lower()
    if "sm2" not in transforms:
        pytest.skip(
            "this xmlsec1 has no SM2/SM3 transforms: SM2 XML signatures are checked by ours"
        )
    _pems(sm2_pki, tmp_path)
    (tmp_path / "signed.xml").write_bytes(xmldsig.sign(DOC, sm2_pki.leaf_key, sm2_pki.leaf))
    assert _xmlsec_verify(xmlsec1_bin, tmp_path, "signed.xml").returncode == 0


# ----------------------------------------------------------------------------- RFC 3161

TSA_CONFIG = """
[tsa]
default_tsa = tsa1
[tsa1]
dir = .
serial = ./serial
crypto_device = builtin
signer_cert = ./tsa.pem
certs = ./chain.pem
signer_key = ./tsa.key
signer_digest = {digest}
default_policy = 1.2.3.4.1
digests = sha256, sha512, sm3
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
{ess}
"""


def _openssl_tsa(tsa: Tsa, d: Path, *, ess_v2: bool = True) -> None:
    (d / "tsa.pem").write_bytes(tsa.certificate.to_pem())
    (d / "tsa.key").write_bytes(private_key_to_pem(tsa.key))  # type: ignore[arg-type]
    (d / "chain.pem").write_bytes(tsa.pki.sub.certificate.to_pem())
    (d / "root.pem").write_bytes(tsa.pki.root.certificate.to_pem())
    (d / "serial").write_text("01\n")
    sm2 = tsa.certificate.key_algorithm is not None and tsa.certificate.key_algorithm.value == "sm2"
    (d / "tsa.cnf").write_text(
        TSA_CONFIG.format(
            digest="sm3" if sm2 else "sha256",
            ess="ess_cert_id_alg = sha256" if ess_v2 else "",
        )
    )


def _tsa_authority(tsa: Tsa) -> tsp.TimestampAuthority:
    assert isinstance(tsa.authority, tsp.TimestampAuthority)
    return tsa.authority


def test_openssl_ts_verifies_our_rsa_tokens(rsa_tsa: Tsa, openssl_bin: str, tmp_path: Path) -> None:
    _openssl_tsa(rsa_tsa, tmp_path)
    (tmp_path / "data.txt").write_bytes(b"transfer 100 CNY")
    request = tsp.build_request(b"transfer 100 CNY", hash_algorithm=tsp.HashAlgorithm.SHA256)
    (tmp_path / "req.tsq").write_bytes(request.der)
    (tmp_path / "resp.tsr").write_bytes(_tsa_authority(rsa_tsa).respond(request.der))
    base = [
        openssl_bin,
        "ts",
        "-verify",
        "-in",
        "resp.tsr",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "chain.pem",
    ]
    assert "Verification: OK" in run([*base, "-queryfile", "req.tsq"], tmp_path).stdout
    assert "Verification: OK" in run([*base, "-data", "data.txt"], tmp_path).stdout
    (tmp_path / "data.txt").write_bytes(b"transfer 900 CNY")
    assert run([*base, "-data", "data.txt"], tmp_path, check=False).returncode != 0


def test_we_verify_openssl_ts_rsa_tokens(rsa_tsa: Tsa, openssl_bin: str, tmp_path: Path) -> None:
    _openssl_tsa(rsa_tsa, tmp_path)
    for alg in (tsp.HashAlgorithm.SHA256, tsp.HashAlgorithm.SM3):
        request = tsp.build_request(b"transfer 100 CNY", hash_algorithm=alg)
        (tmp_path / "req.tsq").write_bytes(request.der)
        run(
            [
                openssl_bin,
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-queryfile",
                "req.tsq",
                "-out",
                "resp.tsr",
            ],
            tmp_path,
        )
        response = (tmp_path / "resp.tsr").read_bytes()
        info = tsp.verify_response(response, request, trust_roots=rsa_tsa.pki.roots)
        assert info.tsa_certificate == rsa_tsa.certificate and info.policy == "1.2.3.4.1"
        assert info.nonce == request.nonce
        with pytest.raises(TimestampVerificationError) as exc:
            tsp.verify_response(
                response,
                tsp.build_request(b"transfer 100 CNY", hash_algorithm=alg),
                trust_roots=rsa_tsa.pki.roots,
            )
        assert exc.value.reason is TimestampReason.NONCE_MISMATCH


def test_openssl_default_sha1_ess_tokens_are_refused(
    rsa_tsa: Tsa, openssl_bin: str, tmp_path: Path
) -> None:
    """Without ess_cert_id_alg OpenSSL names its certificate by SHA-1 only: refused, and the
    message says which setting fixes it."""
    _openssl_tsa(rsa_tsa, tmp_path, ess_v2=False)
    request = tsp.build_request(b"x", hash_algorithm=tsp.HashAlgorithm.SHA256)
    (tmp_path / "req.tsq").write_bytes(request.der)
    run(
        [
            openssl_bin,
            "ts",
            "-reply",
            "-config",
            "tsa.cnf",
            "-queryfile",
            "req.tsq",
            "-out",
            "r.tsr",
        ],
        tmp_path,
    )
    with pytest.raises(TimestampVerificationError, match="ess_cert_id_alg") as exc:
        tsp.verify_response(
            (tmp_path / "r.tsr").read_bytes(), request, trust_roots=rsa_tsa.pki.roots
        )
    assert exc.value.reason is TimestampReason.SIGNING_CERTIFICATE


def test_openssl_ts_and_sm2(sm2_tsa: Tsa, openssl_bin: str, tmp_path: Path) -> None:
    _openssl_tsa(sm2_tsa, tmp_path)
    request = tsp.build_request(b"transfer", hash_algorithm=tsp.HashAlgorithm.SM3)
    (tmp_path / "req.tsq").write_bytes(request.der)
    (tmp_path / "ours.tsr").write_bytes(_tsa_authority(sm2_tsa).respond(request.der))
    verify = run(
        [
            openssl_bin,
            "ts",
            "-verify",
            "-in",
            "ours.tsr",
            "-queryfile",
            "req.tsq",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
        ],
        tmp_path,
        check=False,
    )
    reply = run(
        [
            openssl_bin,
            "ts",
            "-reply",
            "-config",
            "tsa.cnf",
            "-queryfile",
            "req.tsq",
            "-out",
            "theirs.tsr",
        ],
        tmp_path,
        check=False,
    )
    theirs = (tmp_path / "theirs.tsr").read_bytes() if (tmp_path / "theirs.tsr").exists() else b""
    try:
        tsp.verify_response(theirs, request, trust_roots=sm2_tsa.pki.roots)
        issued = True
    except TimestampVerificationError:
        issued = False
    if verify.returncode != 0 and not issued:
        why = [line for line in reply.stderr.splitlines() if "not supported" in line][:1]
        pytest.skip(
            "OpenSSL 3.0 ts can neither verify SM2 tokens (no distid for the chain) nor issue them "
            f"(PKCS7 refuses SM2 keys): {why[0] if why else reply.stderr.strip()}"
        )
    assert "Verification: OK" in verify.stdout or issued


def test_openssl_cms_verifies_our_rsa_cades_t(
    rsa_tsa: Tsa, openssl_bin: str, tmp_path: Path
) -> None:
    pki = rsa_tsa.pki
    client = tsp.TimestampClient(_tsa_authority(rsa_tsa).respond, trust_roots=pki.roots)
    der = cades.sign(
        b"transfer 100 CNY",
        cms.Signer(pki.leaf_key, pki.leaf, (pki.sub.certificate,)),
        timestamper=client,
    )
    (tmp_path / "root.pem").write_bytes(pki.root.certificate.to_pem())
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
    printed = run(
        [openssl_bin, "cms", "-cmsout", "-print", "-noout", "-inform", "DER", "-in", "s.der"],
        tmp_path,
    )
    assert "id-smime-aa-timeStampToken" in printed.stdout
    assert "id-smime-aa-signingCertificateV2" in printed.stdout
