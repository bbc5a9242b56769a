"""``ebank-auth audit``: verify and export the tamper-evident audit log.

    ebank-auth audit verify TARGET [--hmac-key-file F | --public-key PEM] [--min-seq N]
    ebank-auth audit export STORE --out FILE

TARGET is a JSONL export, a store URL (``sqlite:///path.db``, ``redis://…``) or
the path of a SQLite store.  The HMAC-SM3 key may also come from the environment
variable ``EBANK_AUTH_AUDIT_HMAC_KEY`` (hex).  Exit 0: the log verifies;
1: it does not (the first bad record is named); 2: usage or input error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ebank_auth.audit import AuditVerifier, HmacSm3Key, Sm2AuditVerifier, check_jsonl
from ebank_auth.audit.log import audit_store_keys, export_store_jsonl
from ebank_auth.audit.records import check_records
from ebank_auth.crypto import sm2
from ebank_auth.errors import EbankAuthError
from ebank_auth.store import Store, open_store

KEY_ENV = "EBANK_AUTH_AUDIT_HMAC_KEY"


def load_hmac_key(path: str | None) -> HmacSm3Key | None:
    """The audit HMAC key from a file (hex text or raw bytes) or the environment."""
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise click.UsageError(f"cannot read the key file: {exc.strerror}") from None
        text = data.strip()
        try:
            if len(text) >= 32 and all(c in b"0123456789abcdefABCDEF" for c in text):
                return HmacSm3Key(bytes.fromhex(text.decode()))
            return HmacSm3Key(data)
        except (ValueError, EbankAuthError) as exc:
            raise click.UsageError(f"bad audit key: {exc}") from None
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            return HmacSm3Key(bytes.fromhex(env.strip()))
        except (ValueError, EbankAuthError) as exc:
            raise click.UsageError(f"{KEY_ENV} is not a usable hex key: {exc}") from None
    return None


def store_from_target(target: str) -> Store:
    """Open a store from a URL, or a plain path as SQLite."""
    if "://" in target:
        return open_store(target)
    p = Path(target)
    if not p.is_file():
        raise click.UsageError(f"{target}: no such file (give a store URL or an existing path)")
    return open_store(f"sqlite://{p.resolve()}")


def _is_jsonl(target: str) -> bool:
    if "://" in target:
        return False
    p = Path(target)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        return fh.read(16) != b"SQLite format 3\x00"


@click.group()
def audit() -> None:
    """Verify and export the tamper-evident audit log."""


@audit.command()
@click.argument("target")
@click.option("--hmac-key-file", type=click.Path(dir_okay=False), help="HMAC-SM3 key (hex or raw).")
@click.option(
    "--public-key", type=click.Path(dir_okay=False), help="SM2 public key PEM (SM2 logs)."
)
@click.option("--log", "log_name", default="audit", show_default=True, help="Log name.")
@click.option("--min-seq", default=0, type=click.IntRange(0), help="Records the log must hold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    target: str,
    hmac_key_file: str | None,
    public_key: str | None,
    log_name: str,
    min_seq: int,
    as_json: bool,
) -> None:
    """Verify the hash chain, checkpoints and signed head of TARGET."""
    verifier: AuditVerifier | None
    if public_key:
        try:
            verifier = Sm2AuditVerifier(sm2.load_pem_public_key(Path(public_key).read_bytes()))
        except (OSError, EbankAuthError) as exc:
            raise click.UsageError(f"cannot load the SM2 public key: {exc}") from None
    else:
        verifier = load_hmac_key(hmac_key_file)
    if verifier is None:
        raise click.UsageError(
            f"give --hmac-key-file, --public-key or set {KEY_ENV}: signatures must be checked"
        )
    try:
        if _is_jsonl(target):
            with open(target, encoding="utf-8", newline="\n") as fh:
                report = check_jsonl(fh, verifier, log=log_name, min_seq=min_seq)
        else:
            store = store_from_target(target)
            try:
                key, head_key = audit_store_keys(log_name)
                records = ((r.seq, r.data) for r in store.read_log(key))
                report = check_records(
                    records, store.get(head_key), verifier, log=log_name, min_seq=min_seq
                )
            finally:
                store.close()
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"error: cannot read {target}: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif report.ok:
        click.echo(
            f"ok: log {log_name!r}: {report.records} records, {report.checkpoints} signed "
            f"checkpoints, last record {report.last_seq}"
        )
    else:
        click.echo(f"invalid: log {log_name!r}: {report.error}")
    sys.exit(0 if report.ok else 1)


@audit.command()
@click.argument("target")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSONL file to write ('-' for stdout).",
)
@click.option("--log", "log_name", default="audit", show_default=True, help="Log name.")
def export(target: str, out_path: str, log_name: str) -> None:
    """Export the log of store TARGET as JSONL (records, then the signed head)."""
    try:
        store = store_from_target(target)
        try:
            if out_path == "-":
                n = export_store_jsonl(store, sys.stdout, log=log_name)
            else:
                with open(out_path, "w", encoding="utf-8", newline="\n") as fh:
                    n = export_store_jsonl(store, fh, log=log_name)
        finally:
            store.close()
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: cannot write {out_path}: {exc.strerror}", err=True)
        sys.exit(2)
    click.echo(f"exported {n} records", err=True)
