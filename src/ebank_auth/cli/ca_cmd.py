"""``ebank-auth ca``: a small file-based test CA (SM2 or RSA).

A CA directory holds ``ca.pem`` (its certificate), ``ca.key.pem`` (its private
key, mode 0600, encrypted when --password-env is given), ``chain.pem`` (the CA
certificates above it, for intermediates) and ``revoked.txt`` (hex serials).
For tests and demos: a production CA keeps its key in an HSM.
Exit codes as every command (see :mod:`ebank_auth.cli`).
"""

from __future__ import annotations

from pathlib import Path

import click

from ebank_auth.crypto import rsa, sm2, x509
from ebank_auth.crypto.keys import SoftwareKey
from ebank_auth.errors import ConfigurationError, EncodingError

from ._files import password_from_env, read_input, write_output, write_secret
from ._output import Group, emit, examples, json_option
from .cert_cmd import USAGE_CHOICES, load_key

read_file = read_input


def _emit_pem(pem: bytes, out: str | None, as_json: bool, doc: dict[str, object]) -> None:
    if as_json:
        if out not in (None, "-"):
            write_output(pem, out)
        emit({**doc, "out": out, "pem": pem.decode()})
        return
    write_output(pem, out)


def _new_key(algorithm: str) -> SoftwareKey:
    if algorithm == "sm2":
        return sm2.generate_private_key()
    return rsa.generate_private_key(bits=2048)


def _save_ca(
    directory: Path, ca: x509.CertificateAuthority, key: SoftwareKey, password: bytes | None
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.key.pem").exists():
        raise ConfigurationError(f"{directory} already holds a CA: choose another directory")
    write_secret(x509.private_key_to_pem(key, password), directory / "ca.key.pem")
    (directory / "ca.pem").write_bytes(ca.certificate.to_pem())
    (directory / "chain.pem").write_bytes(b"".join(c.to_pem() for c in ca.chain))
    (directory / "revoked.txt").write_text("")


def _load_ca(directory: str, password_env: str | None) -> x509.CertificateAuthority:
    d = Path(directory)
    cert = x509.load_certificate((d / "ca.pem").read_bytes())
    key = load_key(str(d / "ca.key.pem"), password_env)
    chain_file = d / "chain.pem"
    chain = (
        tuple(x509.load_certificates(chain_file.read_bytes()))
        if chain_file.exists() and chain_file.read_bytes().strip()
        else ()
    )
    return x509.CertificateAuthority(cert, key, chain)


@click.group(cls=Group)
def ca() -> None:
    """Run a small test CA in a directory (SM2 or RSA)."""


@ca.command(
    "init",
    epilog=examples(
        'ebank-auth ca init ./rootca --subject "CN=Test Root,O=Bank,C=CN"',
        "ebank-auth ca init ./rsaca --subject CN=RSA-Root --algorithm rsa --days 365",
    ),
)
@click.argument("directory")
@click.option("--subject", required=True, help='Root DN, e.g. "CN=Test Root,O=Bank,C=CN".')
@click.option("--algorithm", type=click.Choice(["sm2", "rsa"]), default="sm2", show_default=True)
@click.option("--days", default=3650, show_default=True, type=int)
@click.option("--path-length", default=None, type=int, help="pathLenConstraint (default none).")
@click.option("--password-env", default=None, help="Env variable with a password for the key.")
@json_option
def init(
    directory: str,
    subject: str,
    algorithm: str,
    days: int,
    path_length: int | None,
    password_env: str | None,
    as_json: bool,
) -> None:
    """Create a root CA (new key + self-signed certificate) in DIRECTORY."""
    key = _new_key(algorithm)
    root = x509.CertificateAuthority.create_root(
        subject, key, valid_days=days, path_length=path_length
    )
    _save_ca(Path(directory), root, key, password_from_env(password_env))
    emit(
        {"directory": directory, "subject": str(root.certificate.subject)},
        f"root CA {root.certificate.subject} created in {directory}",
    )


@ca.command(
    "intermediate",
    epilog=examples('ebank-auth ca intermediate ./rootca ./subca --subject "CN=Test Sub CA,C=CN"'),
)
@click.argument("directory")
@click.argument("new_directory")
@click.option("--subject", required=True)
@click.option("--algorithm", type=click.Choice(["sm2", "rsa"]), default="sm2", show_default=True)
@click.option("--days", default=1825, show_default=True, type=int)
@click.option("--path-length", default=0, show_default=True, type=int)
@click.option("--password-env", default=None, help="Env variable with the CA keys' password.")
@json_option
def intermediate(
    directory: str,
    new_directory: str,
    subject: str,
    algorithm: str,
    days: int,
    path_length: int,
    password_env: str | None,
    as_json: bool,
) -> None:
    """Create a subordinate CA signed by the CA in DIRECTORY, stored in NEW_DIRECTORY."""
    parent = _load_ca(directory, password_env)
    key = _new_key(algorithm)
    sub = parent.create_intermediate(subject, key, valid_days=days, path_length=path_length)
    _save_ca(Path(new_directory), sub, key, password_from_env(password_env))
    emit(
        {"directory": new_directory, "subject": str(sub.certificate.subject)},
        f"intermediate CA {sub.certificate.subject} created in {new_directory}",
    )


@ca.command(
    "issue",
    epilog=examples(
        "ebank-auth ca issue ./rootca --csr alice.csr --out alice.pem",
        "ebank-auth ca issue ./rootca --public-key pub.pem --subject CN=Bob --out bob.pem",
    ),
)
@click.argument("directory")
@click.option("--csr", "csr_file", default=None, help="PKCS#10 request to certify.")
@click.option("--public-key", "pub_file", default=None, help="Public key PEM (instead of a CSR).")
@click.option("--subject", default=None, help="Subject DN (default: the CSR's).")
@click.option(
    "--usage",
    "usages",
    multiple=True,
    type=click.Choice(USAGE_CHOICES),
    help="Key usages (default digital_signature + non_repudiation).",
)
@click.option("--eku", "ekus", multiple=True, help="Extended key usage OID(s).")
@click.option("--days", default=365, show_default=True, type=int)
@click.option("--out", default=None, help="Certificate output file (default stdout).")
@click.option("--password-env", default=None, help="Env variable with the CA key's password.")
@json_option
def issue(
    directory: str,
    csr_file: str | None,
    pub_file: str | None,
    subject: str | None,
    usages: tuple[str, ...],
    ekus: tuple[str, ...],
    days: int,
    out: str | None,
    password_env: str | None,
    as_json: bool,
) -> None:
    """Issue an end-entity certificate from a CSR (proof of possession checked) or a key."""
    authority = _load_ca(directory, password_env)
    key_usage = list(usages) or list(x509.ca.LEAF_SIGNING_KEY_USAGE)
    if (csr_file is None) == (pub_file is None):
        raise click.UsageError("give exactly one of --csr or --public-key")
    if csr_file is not None:
        req = x509.load_csr(read_file(csr_file))
        cert = authority.issue_from_csr(
            req,
            subject=subject,
            key_usage=key_usage,
            extended_key_usage=list(ekus) or None,
            valid_days=days,
        )
    else:
        if subject is None:
            raise click.UsageError("--subject is required with --public-key")
        assert pub_file is not None
        pem = read_file(pub_file)
        from ebank_auth.crypto import der

        spki = der.der_or_pem(pem, ("PUBLIC KEY",), "public key")
        pub = x509.load_public_key(spki)
        cert = authority.issue(
            subject,
            pub,
            key_usage=key_usage,
            extended_key_usage=list(ekus) or None,
            valid_days=days,
        )
    _emit_pem(
        cert.to_pem(),
        out,
        as_json,
        {"subject": str(cert.subject), "serial": f"{cert.serial_number:x}"},
    )


@ca.command(
    "revoke",
    epilog=examples("ebank-auth ca revoke ./rootca alice.pem && ebank-auth ca crl ./rootca"),
)
@click.argument("directory")
@click.argument("certificate")
@json_option
def revoke(directory: str, certificate: str, as_json: bool) -> None:
    """Record CERTIFICATE as revoked (listed by the next ``ca crl``)."""
    cert = x509.load_certificate(read_file(certificate))
    d = Path(directory)
    authority_cert = x509.load_certificate((d / "ca.pem").read_bytes())
    if cert.issuer_key != authority_cert.subject_key:
        raise ConfigurationError("this certificate was not issued by the CA in " + directory)
    with (d / "revoked.txt").open("a", encoding="ascii") as fh:
        fh.write(f"{cert.serial_number:x}\n")
    emit({"serial": f"{cert.serial_number:x}"}, f"revoked serial {cert.serial_number:x}")


@ca.command("crl", epilog=examples("ebank-auth ca crl ./rootca --days 7 --out root.crl"))
@click.argument("directory")
@click.option("--days", default=7, show_default=True, type=int, help="nextUpdate in days.")
@click.option("--out", default=None, help="CRL output file (default stdout).")
@click.option("--password-env", default=None, help="Env variable with the CA key's password.")
@json_option
def crl(
    directory: str, days: int, out: str | None, password_env: str | None, as_json: bool
) -> None:
    """Sign a CRL listing every serial in revoked.txt."""
    authority = _load_ca(directory, password_env)
    serials = []
    for line in (Path(directory) / "revoked.txt").read_text(encoding="ascii").split():
        try:
            serials.append(int(line, 16))
        except ValueError:
            raise EncodingError(
                f"bad serial {line!r} in {directory}/revoked.txt: fix or remove that line"
            ) from None
    lst = authority.issue_crl(serials, valid_days=days)
    _emit_pem(lst.to_pem(), out, as_json, {"revoked": len(serials)})
