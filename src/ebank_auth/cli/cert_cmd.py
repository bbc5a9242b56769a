"""``ebank-auth cert``: show, verify and request X.509 certificates.

Exit codes: 0 valid/ok, 1 refused (the reason is printed), 2 usage or input error.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from ebank_auth.crypto import x509
from ebank_auth.crypto.keys import SoftwareKey
from ebank_auth.errors import EbankAuthError

F = TypeVar("F", bound=Callable[..., Any])

USAGE_CHOICES = [k.value for k in x509.KeyUsage]


def handle_errors(func: F) -> F:
    """Turn library errors into ``error: <msg>`` and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EbankAuthError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def read_file(path: str) -> bytes:
    """Read a file, or stdin for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def write_output(data: bytes, out: str | None) -> None:
    """Write to ``out`` (created with mode 0644) or to stdout."""
    if out is None or out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(out).write_bytes(data)


def write_secret(data: bytes, path: Path) -> None:
    """Write a private key file readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def password_from_env(name: str | None) -> bytes | None:
    """The password held in environment variable ``name`` (never taken on the command line)."""
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise click.UsageError(f"environment variable {name} is not set")
    return value.encode()


def load_key(path: str, password_env: str | None) -> SoftwareKey:
    """Load an SM2/RSA/P-256 private key file."""
    return x509.load_private_key(read_file(path), password_from_env(password_env))


def load_certs(paths: tuple[str, ...]) -> list[x509.Certificate]:
    """Load every certificate of every file (PEM bundles allowed)."""
    out: list[x509.Certificate] = []
    for p in paths:
        out.extend(x509.load_certificates(read_file(p)))
    return out


def parse_time(value: str | None) -> dt.datetime | None:
    """ISO 8601 time (naive = UTC) or None."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def describe_certificate(cert: x509.Certificate) -> list[str]:
    """Human-readable lines describing a certificate."""
    bc = cert.basic_constraints
    lines = [
        f"subject:             {cert.subject}",
        f"issuer:              {cert.issuer}",
        f"serial:              {cert.serial_number:x}",
        f"version:             v{cert.version}",
        f"not before:          {cert.not_before.isoformat()}",
        f"not after:           {cert.not_after.isoformat()}",
        f"public key:          {cert.key_algorithm.value if cert.key_algorithm else 'unsupported'}",
        "signature algorithm: "
        + (cert.signature_algorithm.name if cert.signature_algorithm else "unsupported"),
        "key usage:           "
        + (
            ", ".join(sorted(k.value for k in cert.key_usage))
            if cert.key_usage is not None
            else "(absent)"
        ),
        "extended key usage:  "
        + (", ".join(cert.extended_key_usage) if cert.extended_key_usage else "(absent)"),
        "basic constraints:   "
        + (
            f"CA={bc.ca}" + (f", pathlen={bc.path_length}" if bc.path_length is not None else "")
            if bc
            else "(absent)"
        ),
        "subject key id:      "
        + (cert.subject_key_identifier.hex() if cert.subject_key_identifier else "(absent)"),
        "authority key id:    "
        + (cert.authority_key_identifier.hex() if cert.authority_key_identifier else "(absent)"),
    ]
    if cert.subject_alt_names:
        lines.append("subject alt names:   " + ", ".join(cert.subject_alt_names))
    lines.append(f"sm3 fingerprint:     {cert.fingerprint('sm3')}")
    lines.append(f"sha256 fingerprint:  {cert.fingerprint('sha256')}")
    return lines


@click.group()
def cert() -> None:
    """Show, verify and request X.509 certificates (SM2, RSA, P-256)."""


@cert.command("show")
@click.argument("file")
@handle_errors
def show(file: str) -> None:
    """Print the fields of a certificate, CSR or CRL (PEM or DER)."""
    data = read_file(file)
    kind = _guess_kind(data)
    if kind == "csr":
        csr = x509.load_csr(data)
        click.echo(f"certificate request\nsubject:    {csr.subject}")
        alg = csr.signature_algorithm.name if csr.signature_algorithm else "unsupported"
        click.echo(f"signature:  {alg}")
        click.echo("proof of possession: " + ("ok" if csr.is_valid() else "FAILED"))
        return
    if kind == "crl":
        crl = x509.load_crl(data)
        click.echo(f"certificate revocation list\nissuer:      {crl.issuer}")
        click.echo(f"this update: {crl.this_update.isoformat()}")
        nu = crl.next_update.isoformat() if crl.next_update else "(absent)"
        click.echo(f"next update: {nu}")
        click.echo(f"crl number:  {crl.crl_number}")
        for entry in crl.revoked.values():
            why = f" {entry.reason.value}" if entry.reason else ""
            when = entry.revocation_date.isoformat()
            click.echo(f"revoked:     {entry.serial_number:x} {when}{why}")
        return
    for i, c in enumerate(x509.load_certificates(data)):
        if i:
            click.echo("")
        click.echo("\n".join(describe_certificate(c)))


def _guess_kind(data: bytes) -> str:
    """'csr', 'crl' or 'cert', from the PEM label or by trying the DER parsers."""
    head = data[:100]
    if b"-----BEGIN" in head:
        if b"CERTIFICATE REQUEST" in head:
            return "csr"
        return "crl" if b"X509 CRL" in head else "cert"
    for kind, loader in (("csr", x509.load_csr), ("crl", x509.load_crl)):
        try:
            loader(data)
        except EbankAuthError:
            continue
        return kind
    return "cert"


@cert.command("verify")
@click.argument("leaf")
@click.option("--chain", "chain", multiple=True, help="Intermediate certificate file(s).")
@click.option("--trust", "trust", multiple=True, required=True, help="Trusted root file(s).")
@click.option("--crl", "crls", multiple=True, help="CRL file(s) to check revocation.")
@click.option("--at", "at", default=None, help="Validation time (ISO 8601, default now).")
@click.option(
    "--usage",
    "usages",
    multiple=True,
    type=click.Choice(USAGE_CHOICES),
    help="Key usage the leaf must have (e.g. digital_signature).",
)
@click.option("--require-crl", is_flag=True, help="Refuse certificates without a CRL.")
@handle_errors
def verify(
    leaf: str,
    chain: tuple[str, ...],
    trust: tuple[str, ...],
    crls: tuple[str, ...],
    at: str | None,
    usages: tuple[str, ...],
    require_crl: bool,
) -> None:
    """Validate LEAF up to a trusted root; exit 0 valid, 1 invalid (reason printed)."""
    leaf_cert = x509.load_certificate(read_file(leaf))
    result = x509.validate_chain(
        leaf_cert,
        load_certs(chain),
        load_certs(trust),
        at=parse_time(at),
        crls=[x509.load_crl(read_file(c)) for c in crls],
        required_key_usage=list(usages) or None,
        require_crl=require_crl,
    )
    if result.valid:
        click.echo("OK: certificate path is valid")
        for i, c in enumerate(result.chain):
            click.echo(f"  {i}: {c.subject}")
        sys.exit(0)
    click.echo(f"INVALID: {result.reason.value}: {result.message}")
    sys.exit(1)


@cert.command("csr")
@click.option("--key", "key_file", required=True, help="Private key (PEM/DER PKCS#8).")
@click.option("--subject", required=True, help='Subject DN, e.g. "CN=Alice,O=Bank,C=CN".')
@click.option("--password-env", default=None, help="Environment variable holding the key password.")
@click.option("--usage", "usages", multiple=True, type=click.Choice(USAGE_CHOICES))
@click.option("--out", default=None, help="Output file (default stdout).")
@handle_errors
def csr(
    key_file: str, subject: str, password_env: str | None, usages: tuple[str, ...], out: str | None
) -> None:
    """Make a PKCS#10 certificate signing request signed by KEY."""
    key = load_key(key_file, password_env)
    req = x509.build_csr(subject, key, key_usage=list(usages) or None)
    write_output(req.to_pem(), out)


@cert.command("check-csr")
@click.argument("file")
@handle_errors
def check_csr(file: str) -> None:
    """Check a CSR's proof of possession and public key (exit 0 ok, 1 refused)."""
    req = x509.load_csr(read_file(file))
    try:
        req.verify()
    except EbankAuthError as exc:
        click.echo(f"INVALID: {exc}")
        sys.exit(1)
    click.echo(f"OK: {req.subject}")
