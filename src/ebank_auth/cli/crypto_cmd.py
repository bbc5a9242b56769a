"""``ebank-auth crypto``: SM2 keys and signatures, SM3 digests.

Exit codes: 0 success/valid, 1 signature invalid, 2 usage or input error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ebank_auth.crypto import sm2, sm3
from ebank_auth.errors import EbankAuthError, InvalidSignature


def _read(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        click.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        sys.exit(2)


def _write(path: str, data: bytes, secret: bool = False) -> None:
    try:
        if path == "-":
            sys.stdout.buffer.write(data)
            return
        if secret:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        else:
            Path(path).write_bytes(data)
    except OSError as exc:
        click.echo(f"error: cannot write {path}: {exc.strerror}", err=True)
        sys.exit(2)


def _password(env: str | None) -> str | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if value is None:
        click.echo(f"error: environment variable {env} is not set", err=True)
        sys.exit(2)
    return value


@click.group("crypto")
def crypto() -> None:
    """National-algorithm primitives: SM2 keys/signatures, SM3 digests."""


@crypto.group("sm2")
def sm2_group() -> None:
    """SM2 keys, signatures (SM2-with-SM3 and a distinguishing ID)."""


@sm2_group.command("keygen")
@click.option("--out", "out", required=True, help="Private key file (PKCS#8 PEM, mode 0600).")
@click.option("--pub", "pub", default=None, help="Also write the public key (SPKI PEM) here.")
@click.option(
    "--password-env", default=None, metavar="VAR", help="Encrypt the key with the password in $VAR."
)
def keygen(out: str, pub: str | None, password_env: str | None) -> None:
    """Generate an SM2 key pair."""
    try:
        key = sm2.generate_private_key()
        _write(out, key.to_pem(_password(password_env)), secret=True)
        if pub:
            _write(pub, key.public_key().to_pem())
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"wrote private key {out}" + (f" and public key {pub}" if pub else ""), err=True)


@sm2_group.command("sign")
@click.option("--key", "key_path", required=True, help="SM2 private key (PEM or DER).")
@click.option(
    "--uid", default=sm2.DEFAULT_UID.decode(), show_default=True, help="Distinguishing ID."
)
@click.option("--in", "in_path", required=True, help="File to sign ('-' for stdin).")
@click.option(
    "--out", "out", required=True, help="Signature file (DER SEQUENCE{r,s}; '-' for stdout)."
)
@click.option("--password-env", default=None, metavar="VAR", help="Key password from $VAR.")
def sign(key_path: str, uid: str, in_path: str, out: str, password_env: str | None) -> None:
    """Sign a file with SM2-with-SM3."""
    raw = _read(key_path)
    try:
        pw = _password(password_env)
        key = (
            sm2.load_pem_private_key(raw, pw)
            if b"-----BEGIN" in raw
            else sm2.load_der_private_key(raw, pw)
        )
        sig = key.sign(_read(in_path), uid=uid.encode())
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    _write(out, sig)


@sm2_group.command("verify")
@click.option("--pub", "pub_path", required=True, help="SM2 public key (PEM or DER SPKI).")
@click.option(
    "--uid", default=sm2.DEFAULT_UID.decode(), show_default=True, help="Distinguishing ID."
)
@click.option("--in", "in_path", required=True, help="Signed file ('-' for stdin).")
@click.option("--sig", "sig_path", required=True, help="Signature file (DER).")
def verify(pub_path: str, uid: str, in_path: str, sig_path: str) -> None:
    """Verify an SM2 signature: exit 0 valid, 1 invalid, 2 input error."""
    raw = _read(pub_path)
    try:
        pub = sm2.load_pem_public_key(raw) if b"-----BEGIN" in raw else sm2.load_der_public_key(raw)
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    try:
        pub.verify(_read(sig_path), _read(in_path), uid=uid.encode())
    except InvalidSignature as exc:
        click.echo(f"INVALID: {exc}")
        sys.exit(1)
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo("signature valid")


@crypto.command("sm3")
@click.argument("file")
def sm3_cmd(file: str) -> None:
    """Print the SM3 digest of FILE ('-' for stdin) in hex."""
    h = sm3.SM3()
    if file == "-":
        h.update(sys.stdin.buffer.read())
    else:
        try:
            with open(file, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            click.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
            sys.exit(2)
    click.echo(f"{h.hexdigest()}  {file}")
