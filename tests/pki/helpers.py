"""Helpers shared by the PKI tests (importable as ``pki.helpers``)."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ebank_auth.crypto import rsa, sm2, x509
from ebank_auth.crypto.keys import SoftwareKey
from ebank_auth.crypto.x509 import KeyUsage

DISTID = "distid:1234567812345678"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class Pki:
    """root → sub → leaf, with keys; ``chain`` is (sub,), ``roots`` is (root,)."""

    root: x509.CertificateAuthority
    sub: x509.CertificateAuthority
    leaf_key: SoftwareKey
    leaf: x509.Certificate

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [self.sub.certificate]

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.root.certificate]


def make_pki(kind: str) -> Pki:
    if kind == "sm2":
        keys = [sm2.generate_private_key() for _ in range(3)]
    else:
        keys = [rsa.generate_private_key(2048) for _ in range(3)]
    tag = kind.upper()
    root = x509.CertificateAuthority.create_root(f"CN={tag} Test Root,O=ebank-auth,C=CN", keys[0])
    sub = root.create_intermediate(f"CN={tag} Issuing CA,O=ebank-auth,C=CN", keys[1])
    leaf = sub.issue(
        f"CN={tag} Alice,O=ebank-auth,C=CN",
        keys[2].public_key(),
        key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION},
    )
    return Pki(root, sub, keys[2], leaf)


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def forge(
    ca: x509.CertificateAuthority,
    subject: str | None = "CN=Forged,O=ebank-auth,C=CN",
    *,
    spki_der: bytes | None = None,
    serial: int | None = None,
    drop: tuple[str, ...] = (),
    add: tuple[tuple[str, bool, object], ...] = (),
    is_ca: bool = False,
    key_usage: set[KeyUsage] | None = None,
    key: SoftwareKey | None = None,
    subject_alt_names: tuple[str, ...] = (),
) -> x509.Certificate:
    """A certificate signed by ``ca`` with deliberate deviations from the profile.

    Starts from ``ca.issue(...)`` (leaf, or CA when ``is_ca``), then edits the TBS:
    ``subject`` (None: an empty subject), ``spki_der`` (any SubjectPublicKeyInfo, e.g. a
    weak key made by ``cryptography``), ``serial`` (any integer, also negative or zero),
    ``drop`` extension ids (asn1crypto names or dotted), ``add`` (extn_id, critical,
    value) triples; and re-signs it with the CA's key.  ``key``: the subject's key
    (default: a fresh SM2 key), e.g. to make the forged CA issue certificates.
    """
    from asn1crypto import keys as a_keys
    from asn1crypto import x509 as a_x509

    from ebank_auth.crypto._asn1 import algorithm_identifier
    from ebank_auth.crypto.keys import default_signature_algorithm
    from ebank_auth.crypto.x509.ca import CA_KEY_USAGE

    usage = key_usage if key_usage is not None else (CA_KEY_USAGE if is_ca else None)
    base = ca.issue(
        subject or "CN=placeholder",
        (key or sm2.generate_private_key()).public_key(),
        is_ca=is_ca,
        key_usage=usage if usage is not None else {KeyUsage.DIGITAL_SIGNATURE},
        subject_alt_names=subject_alt_names,
    )
    tbs = a_x509.TbsCertificate.load(base.tbs_der)
    if subject is None:
        tbs["subject"] = a_x509.Name(name="", value=a_x509.RDNSequence([]))
    if spki_der is not None:
        tbs["subject_public_key_info"] = a_keys.PublicKeyInfo.load(spki_der)
    if serial is not None:
        tbs["serial_number"] = serial
    exts = [
        e
        for e in tbs["extensions"]
        if e["extn_id"].native not in drop and e["extn_id"].dotted not in drop
    ]
    for oid, critical, value in add:
        exts.append(a_x509.Extension({"extn_id": oid, "critical": critical, "extn_value": value}))
    tbs["extensions"] = exts
    alg = default_signature_algorithm(ca.key)
    tbs_der = tbs.dump()
    sig = ca.key.sign_with(alg, tbs_der)
    der = a_x509.Certificate(
        {
            "tbs_certificate": a_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": algorithm_identifier(alg),
            "signature_value": sig,
        }
    ).dump()
    return x509.load_certificate(der)


#: extendedKeyUsage = id-kp-timeStamping (DER of the extension value)
EKU_TIME_STAMPING = bytes.fromhex("300a06082b06010505070308")


@dataclass
class Tsa:
    """A TSA certified by ``pki.sub``: its key, certificate and the TimestampAuthority."""

    pki: Pki
    key: SoftwareKey
    certificate: x509.Certificate
    authority: object  # tsp.TimestampAuthority (imported lazily by the tests that use it)


def make_tsa(pki: Pki, *, critical: bool = True, eku: bytes = EKU_TIME_STAMPING) -> Tsa:
    from ebank_auth.crypto import tsp

    key: SoftwareKey = (
        sm2.generate_private_key()
        if isinstance(pki.leaf_key, sm2.SM2PrivateKey)
        else rsa.generate_private_key(2048)
    )
    cert = pki.sub.issue(
        "CN=Test TSA,O=ebank-auth,C=CN",
        key.public_key(),
        key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION},
        extra_extensions=[("2.5.29.37", eku, critical)],
    )
    return Tsa(pki, key, cert, tsp.TimestampAuthority(key, cert, chain=(pki.sub.certificate,)))
