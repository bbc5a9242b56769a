"""``ebank-auth cms``: sign and verify CMS SignedData (RFC 5652 / GM/T 0010).

Exit codes: 0 valid, 1 refused (the reason is printed), 2 usage or input error.
"""

from __future__ import annotations

import sys

import click

from ebank_auth.crypto import cms as cms_mod
from ebank_auth.crypto import der, x509

from .cert_cmd import handle_errors, load_certs, load_key, parse_time, read_file, write_output


@click.group()
def cms() -> None:
    """Sign and verify CMS SignedData (SM2 with SM3, RSA with SHA-256)."""


@cms.command("sign")
@click.option("--key", "key_file", required=True, help="Signer private key.")
@click.option("--cert", "cert_file", required=True, help="Signer certificate.")
@click.option("--chain", "chain", multiple=True, help="CA certificates to embed.")
@click.option("--in", "in_file", default="-", show_default=True, help="Content file.")
@click.option("--out", default=None, help="Output file (default stdout).")
@click.option("--detached", is_flag=True, help="Leave the content out of the SignedData.")
@click.option(
    "--profile",
    type=click.Choice([p.value for p in cms_mod.CMSProfile]),
    default="rfc5652",
    show_default=True,
)
@click.option("--pem", "as_pem", is_flag=True, help="PEM output (label CMS) instead of DER.")
@click.option("--password-env", default=None)
@handle_errors
def sign(
    key_file: str,
    cert_file: str,
    chain: tuple[str, ...],
    in_file: str,
    out: str | None,
    detached: bool,
    profile: str,
    as_pem: bool,
    password_env: str | None,
) -> None:
    """Sign content into a CMS SignedData."""
    key = load_key(key_file, password_env)
    signer = cms_mod.Signer(
        key, x509.load_certificate(read_file(cert_file)), tuple(load_certs(chain))
    )
    signed = cms_mod.sign(
        read_file(in_file), signer, detached=detached, profile=cms_mod.CMSProfile(profile)
    )
    write_output(der.to_pem(signed, "CMS") if as_pem else signed, out)


@cms.command("verify")
@click.argument("file")
@click.option("--trust", "trust", multiple=True, required=True, help="Trusted root file(s).")
@click.option("--content", "content_file", default=None, help="Detached content file.")
@click.option("--chain", "chain", multiple=True, help="Extra intermediate certificates.")
@click.option("--certs", "certs", multiple=True, help="Signer certificates not embedded.")
@click.option("--crl", "crls", multiple=True)
@click.option("--at", default=None, help="Validation time (ISO 8601, default now).")
@click.option("--out-content", default=None, help="Write the verified content here.")
@handle_errors
def verify(
    file: str,
    trust: tuple[str, ...],
    content_file: str | None,
    chain: tuple[str, ...],
    certs: tuple[str, ...],
    crls: tuple[str, ...],
    at: str | None,
    out_content: str | None,
) -> None:
    """Verify a SignedData: exit 0 valid, 1 invalid (reason printed)."""
    result = cms_mod.validate(
        read_file(file),
        content=read_file(content_file) if content_file else None,
        trust_roots=load_certs(trust),
        intermediates=load_certs(chain),
        certificates=load_certs(certs),
        crls=[x509.load_crl(read_file(c)) for c in crls],
        at=parse_time(at),
    )
    if not result.valid:
        extra = f" (chain: {result.chain_reason.value})" if result.chain_reason else ""
        click.echo(f"INVALID: {result.reason.value}{extra}: {result.message}")
        sys.exit(1)
    profile = result.profile.value if result.profile else "?"
    click.echo(f"OK: {len(result.signers)} signer(s) valid, profile {profile}")
    for s in result.signers:
        when = s.signing_time.isoformat() if s.signing_time else "-"
        subject = s.certificate.subject if s.certificate else "?"
        click.echo(f"  signer: {subject} (signing time {when})")
    if out_content and result.content is not None:
        write_output(result.content, out_content)
