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
