"""``ebank-auth cert``: show, verify and request X.509 certificates.

Exit codes as every command (see :mod:`ebank_auth.cli`): 0 valid/ok, 1 refused
(the reason is printed), 2 usage or unreadable/malformed input.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from ebank_auth.crypto import x509
from ebank_auth.crypto.keys import SoftwareKey
from ebank_auth.errors import CertificateValidationError, EbankAuthError

from ._files import password_from_env, read_input, write_output
from ._output import Group, emit, examples, json_option, verdict

USAGE_CHOICES = [k.value for k in x509.KeyUsage]

read_file = read_input


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


def certificate_document(cert: x509.Certificate) -> dict[str, Any]:
    """The fields of a certificate for ``--json``."""
    bc = cert.basic_constraints
    return {
        "subject": str(cert.subject),
        "issuer": str(cert.issuer),
        "serial": f"{cert.serial_number:x}",
        "version": cert.version,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "public_key": cert.key_algorithm.value if cert.key_algorithm else None,
        "signature_algorithm": (
            cert.signature_algorithm.name if cert.signature_algorithm else None
        ),
        "key_usage": (
            sorted(k.value for k in cert.key_usage) if cert.key_usage is not None else None
        ),
        "extended_key_usage": list(cert.extended_key_usage or []),
        "basic_constraints": (
            {"ca": bc.ca, "path_length": bc.path_length} if bc is not None else None
        ),
        "subject_alt_names": list(cert.subject_alt_names or []),
        "sm3_fingerprint": cert.fingerprint("sm3"),
        "sha256_fingerprint": cert.fingerprint("sha256"),
    }


@click.group(cls=Group)
def cert() -> None:
    """Show, verify and request X.509 certificates (SM2, RSA, P-256)."""


@cert.command(
    "show",
    epilog=examples("ebank-auth cert show leaf.pem", "ebank-auth cert show ca.crl --json"),
)
@click.argument("file")
@json_option
def show(file: str, as_json: bool) -> None:
    """Print the fields of a certificate, CSR or CRL (PEM or DER)."""
    data = read_file(file)
    kind = _guess_kind(data)
    if kind == "csr":
        csr = x509.load_csr(data)
        alg = csr.signature_algorithm.name if csr.signature_algorithm else "unsupported"
        pop = csr.is_valid()
        emit(
            {"kind": "csr", "subject": str(csr.subject), "signature_algorithm": alg,
             "proof_of_possession": pop},
            [f"certificate request\nsubject:    {csr.subject}", f"signature:  {alg}",
             "proof of possession: " + ("ok" if pop else "FAILED")],
        )  # fmt: skip
        return
    if kind == "crl":
        crl = x509.load_crl(data)
        nu = crl.next_update.isoformat() if crl.next_update else None
        revoked = [
            {"serial": f"{e.serial_number:x}", "date": e.revocation_date.isoformat(),
             "reason": e.reason.value if e.reason else None}
            for e in crl.revoked.values()
        ]  # fmt: skip
        lines = [
            f"certificate revocation list\nissuer:      {crl.issuer}",
            f"this update: {crl.this_update.isoformat()}",
            f"next update: {nu or '(absent)'}",
            f"crl number:  {crl.crl_number}",
        ]
        for r in revoked:
            why = f" {r['reason']}" if r["reason"] else ""
            lines.append(f"revoked:     {r['serial']} {r['date']}{why}")
        emit(
            {"kind": "crl", "issuer": str(crl.issuer), "this_update": crl.this_update.isoformat(),
             "next_update": nu, "crl_number": crl.crl_number, "revoked": revoked},
            lines,
        )  # fmt: skip
        return
    certs = x509.load_certificates(data)
    emit(
        {"kind": "certificate", "certificates": [certificate_document(c) for c in certs]},
        "\n\n".join("\n".join(describe_certificate(c)) for c in certs),
    )


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


@cert.command(
    "verify",
    epilog=examples(
        "ebank-auth cert verify leaf.pem --chain sub.pem --trust root.pem",
        "ebank-auth cert verify leaf.pem --trust root.pem --crl root.crl --require-crl --json",
        "ebank-auth cert verify leaf.pem --trust root.pem --at 2030-01-01T00:00:00Z",
    ),
)
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
@json_option
def verify(
    leaf: str,
    chain: tuple[str, ...],
    trust: tuple[str, ...],
    crls: tuple[str, ...],
    at: str | None,
    usages: tuple[str, ...],
    require_crl: bool,
    as_json: bool,
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
        lines = ["OK: certificate path is valid"]
        lines += [f"  {i}: {c.subject}" for i, c in enumerate(result.chain)]
        verdict(True, {"valid": True, "chain": [str(c.subject) for c in result.chain]}, lines)
    reason = result.reason.value
    verdict(
        False,
        {"valid": False, "reason": reason},
        f"INVALID: {reason}: {result.message}",
        error=CertificateValidationError(result.message, reason=result.reason),
    )


@cert.command(
    "csr",
    epilog=examples(
        'ebank-auth cert csr --key key.pem --subject "CN=Alice,O=Bank,C=CN" --out alice.csr',
        "ebank-auth cert csr --key key.pem --subject CN=Alice --usage digital_signature",
    ),
)
@click.option("--key", "key_file", required=True, help="Private key (PEM/DER PKCS#8).")
@click.option("--subject", required=True, help='Subject DN, e.g. "CN=Alice,O=Bank,C=CN".')
@click.option("--password-env", default=None, help="Environment variable holding the key password.")
@click.option("--usage", "usages", multiple=True, type=click.Choice(USAGE_CHOICES))
@click.option("--out", default=None, help="Output file (default stdout).")
@json_option
def csr(
    key_file: str,
    subject: str,
    password_env: str | None,
    usages: tuple[str, ...],
    out: str | None,
    as_json: bool,
) -> None:
    """Make a PKCS#10 certificate signing request signed by KEY."""
    key = load_key(key_file, password_env)
    req = x509.build_csr(subject, key, key_usage=list(usages) or None)
    if as_json:
        if out not in (None, "-"):
            write_output(req.to_pem(), out)
        emit({"subject": str(req.subject), "out": out, "pem": req.to_pem().decode()})
        return
    write_output(req.to_pem(), out)


@cert.command(
    "check-csr",
    epilog=examples(
        "ebank-auth cert check-csr alice.csr", "ebank-auth cert check-csr alice.csr --json"
    ),
)
@click.argument("file")
@json_option
def check_csr(file: str, as_json: bool) -> None:
    """Check a CSR's proof of possession and public key (exit 0 ok, 1 refused)."""
    req = x509.load_csr(read_file(file))
    try:
        req.verify()
    except EbankAuthError as exc:
        verdict(False, {"valid": False, "subject": str(req.subject)}, f"INVALID: {exc}", error=exc)
    verdict(True, {"valid": True, "subject": str(req.subject)}, f"OK: {req.subject}")
