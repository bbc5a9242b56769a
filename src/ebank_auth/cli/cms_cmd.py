"""``ebank-auth cms``: sign and verify CMS SignedData (RFC 5652 / GM/T 0010).

Exit codes as every command (see :mod:`ebank_auth.cli`): 0 valid, 1 refused
(the reason is printed), 2 usage or input error -- a SignedData that is not
well-formed DER/PEM is an input error, not a refusal.
"""

from __future__ import annotations

import click

from ebank_auth.crypto import cms as cms_mod
from ebank_auth.crypto import der, x509
from ebank_auth.errors import CMSVerificationError, EncodingError

from ._files import read_input, write_output
from ._output import Group, emit, examples, json_option, renamed_option, verdict
from .cert_cmd import load_certs, load_key, parse_time

read_file = read_input


@click.group(cls=Group)
def cms() -> None:
    """Sign and verify CMS SignedData (SM2 with SM3, RSA with SHA-256)."""


@cms.command(
    "sign",
    epilog=examples(
        "ebank-auth cms sign --key key.pem --cert alice.pem --in tx.json --out tx.p7s",
        "ebank-auth cms sign --key key.pem --cert alice.pem --in tx.json --detached --pem",
    ),
)
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
@click.option("--password-env", default=None, metavar="VAR", help="Key password from $VAR.")
@json_option
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
    as_json: bool,
) -> None:
    """Sign content into a CMS SignedData."""
    key = load_key(key_file, password_env)
    signer = cms_mod.Signer(
        key, x509.load_certificate(read_file(cert_file)), tuple(load_certs(chain))
    )
    signed = cms_mod.sign(
        read_file(in_file), signer, detached=detached, profile=cms_mod.CMSProfile(profile)
    )
    data = der.to_pem(signed, "CMS") if as_pem else signed
    if as_json:
        if out not in (None, "-"):
            write_output(data, out)
        emit({"out": out, "pem": der.to_pem(signed, "CMS").decode(), "detached": detached})
        return
    write_output(data, out)


@cms.command(
    "verify",
    epilog=examples(
        "ebank-auth cms verify tx.p7s --trust root.pem --content-out tx.json",
        "ebank-auth cms verify tx.p7s --content tx.json --trust root.pem --json",
    ),
)
@click.argument("file")
@click.option("--trust", "trust", multiple=True, required=True, help="Trusted root file(s).")
@click.option("--content", "content_file", default=None, help="Detached content file.")
@click.option("--chain", "chain", multiple=True, help="Extra intermediate certificates.")
@click.option("--certs", "certs", multiple=True, help="Signer certificates not embedded.")
@click.option("--crl", "crls", multiple=True, help="CRL file(s) to check revocation.")
@click.option("--at", default=None, help="Validation time (ISO 8601, default now).")
@click.option("--content-out", default=None, help="Write the verified content here.")
@renamed_option("--out-content", "--content-out")
@json_option
def verify(
    file: str,
    trust: tuple[str, ...],
    content_file: str | None,
    chain: tuple[str, ...],
    certs: tuple[str, ...],
    crls: tuple[str, ...],
    at: str | None,
    content_out: str | None,
    as_json: bool,
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
        if result.reason is cms_mod.CMSReason.MALFORMED:
            raise EncodingError(f"{file} is not a CMS SignedData: {result.message}")
        extra = f" (chain: {result.chain_reason.value})" if result.chain_reason else ""
        verdict(
            False,
            {"valid": False, "reason": result.reason.value,
             "chain_reason": result.chain_reason.value if result.chain_reason else None},
            f"INVALID: {result.reason.value}{extra}: {result.message}",
            error=CMSVerificationError(result.message, reason=result.reason, result=result),
        )  # fmt: skip
    if content_out and result.content is not None:
        write_output(result.content, content_out)
    profile = result.profile.value if result.profile else None
    signers = [
        {
            "subject": str(s.certificate.subject) if s.certificate else None,
            "signing_time": s.signing_time.isoformat() if s.signing_time else None,
        }
        for s in result.signers
    ]
    lines = [f"OK: {len(signers)} signer(s) valid, profile {profile or '?'}"]
    lines += [
        f"  signer: {s['subject'] or '?'} (signing time {s['signing_time'] or '-'})"
        for s in signers
    ]
    verdict(True, {"valid": True, "profile": profile, "signers": signers}, lines)
