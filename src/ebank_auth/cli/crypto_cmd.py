"""``ebank-auth crypto``: SM2 keys and signatures, SM3 digests.

Exit codes as every command (see :mod:`ebank_auth.cli`): a signature that does
not verify -- or is not a well-formed SM2 signature -- exits 1; an unreadable or
malformed key file exits 2.
"""

from __future__ import annotations

import sys

import click

from ebank_auth.crypto import sm2, sm3
from ebank_auth.errors import InvalidSignature

from ._files import password_from_env, read_input, write_output, write_secret
from ._output import Group, emit, examples, info, json_option, verdict


@click.group("crypto", cls=Group)
def crypto() -> None:
    """National-algorithm primitives: SM2 keys/signatures, SM3 digests."""


@crypto.group("sm2")
def sm2_group() -> None:
    """SM2 keys, signatures (SM2-with-SM3 and a distinguishing ID)."""


@sm2_group.command(
    "keygen",
    epilog=examples(
        "ebank-auth crypto sm2 keygen --out key.pem --public-key-out pub.pem",
        "ebank-auth crypto sm2 keygen --out key.pem --force   # replace an existing key file",
        "KEYPASS=secret ebank-auth crypto sm2 keygen --out key.pem --password-env KEYPASS",
    ),
)
@click.option("--out", "out", required=True, help="Private key file (PKCS#8 PEM, mode 0600).")
@click.option("--public-key-out", default=None, help="Also write the public key (SPKI PEM) here.")
@click.option(
    "--password-env", default=None, metavar="VAR", help="Encrypt the key with the password in $VAR."
)
@click.option("--force", is_flag=True, help="Replace an existing --out file (the old key is lost).")
@json_option
def keygen(
    out: str, public_key_out: str | None, password_env: str | None, force: bool, as_json: bool
) -> None:
    """Generate an SM2 key pair.  An existing --out file is never overwritten without --force."""
    key = sm2.generate_private_key()
    write_secret(key.to_pem(password_from_env(password_env)), out, overwrite=force)
    pub = key.public_key().to_pem()
    if public_key_out:
        write_output(pub, public_key_out)
    emit(
        {"private_key": out, "public_key": public_key_out, "public_key_pem": pub.decode()},
        None,
    )
    if not as_json:
        info(
            f"wrote private key {out}"
            + (f" and public key {public_key_out}" if public_key_out else "")
        )


def _load_private(path: str, password_env: str | None) -> sm2.SM2PrivateKey:
    raw = read_input(path)
    pw = password_from_env(password_env)
    if b"-----BEGIN" in raw:
        return sm2.load_pem_private_key(raw, pw)
    return sm2.load_der_private_key(raw, pw)


@sm2_group.command(
    "sign",
    epilog=examples(
        "ebank-auth crypto sm2 sign --key key.pem --in tx.json --out tx.sig",
        "echo -n hello | ebank-auth crypto sm2 sign --key key.pem --in - --out - | xxd",
    ),
)
@click.option("--key", "key_path", required=True, help="SM2 private key (PEM or DER).")
@click.option(
    "--uid", default=sm2.DEFAULT_UID.decode(), show_default=True, help="Distinguishing ID."
)
@click.option("--in", "in_path", required=True, help="File to sign ('-' for stdin).")
@click.option(
    "--out", "out", required=True, help="Signature file (DER SEQUENCE{r,s}; '-' for stdout)."
)
@click.option("--password-env", default=None, metavar="VAR", help="Key password from $VAR.")
@json_option
def sign(
    key_path: str, uid: str, in_path: str, out: str, password_env: str | None, as_json: bool
) -> None:
    """Sign a file with SM2-with-SM3 (with --json and --out -: the signature in hex)."""
    key = _load_private(key_path, password_env)
    sig = key.sign(read_input(in_path), uid=uid.encode())
    if as_json:
        if out != "-":
            write_output(sig, out)
        emit({"signature": sig.hex(), "out": None if out == "-" else out})
        return
    write_output(sig, out)


@sm2_group.command(
    "verify",
    epilog=examples(
        "ebank-auth crypto sm2 verify --public-key pub.pem --in tx.json --signature tx.sig",
        "ebank-auth crypto sm2 verify --public-key pub.pem --in tx.json --signature tx.sig --json",
    ),
)
@click.option("--public-key", "pub_path", required=True, help="SM2 public key (PEM or DER SPKI).")
@click.option(
    "--uid", default=sm2.DEFAULT_UID.decode(), show_default=True, help="Distinguishing ID."
)
@click.option("--in", "in_path", required=True, help="Signed file ('-' for stdin).")
@click.option("--signature", "sig_path", required=True, help="Signature file (DER).")
@json_option
def verify(pub_path: str, uid: str, in_path: str, sig_path: str, as_json: bool) -> None:
    """Verify an SM2 signature: exit 0 valid, 1 invalid, 2 unreadable key or file."""
    raw = read_input(pub_path)
    pub = sm2.load_pem_public_key(raw) if b"-----BEGIN" in raw else sm2.load_der_public_key(raw)
    signature, data = read_input(sig_path), read_input(in_path)
    try:
        pub.verify(signature, data, uid=uid.encode())
    except InvalidSignature as exc:
        verdict(False, {"valid": False}, f"INVALID: {exc.message}", error=exc)
    verdict(True, {"valid": True}, "signature valid")


@crypto.command(
    "sm3", epilog=examples("ebank-auth crypto sm3 tx.json", "echo -n abc | ebank-auth crypto sm3 -")
)
@click.argument("file")
@json_option
def sm3_cmd(file: str, as_json: bool) -> None:
    """Print the SM3 digest of FILE ('-' for stdin) in hex."""
    h = sm3.SM3()
    if file == "-":
        h.update(sys.stdin.buffer.read())
    else:
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    emit({"file": file, "sm3": h.hexdigest()}, f"{h.hexdigest()}  {file}")
