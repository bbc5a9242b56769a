"""``ebank-auth audit``: verify and export the tamper-evident audit log.

    ebank-auth audit verify [TARGET] [--audit-key-file F | --public-key PEM] [--min-seq N]
    ebank-auth audit export [STORE] --out FILE

TARGET is a JSONL export, a store URL (``sqlite:///path.db``, ``redis://…``) or
the path of a SQLite store; without it, the default store (``EBANK_AUTH_STORE``,
else SQLite under :func:`ebank_auth.paths.home`).  The HMAC-SM3 key may also come
from the environment variable ``EBANK_AUTH_AUDIT_HMAC_KEY`` (hex).  Exit 0: the log
verifies; 1: it does not (the first bad record is named); 2: usage or input
error; 3: the store is unreachable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ebank_auth.audit import AuditVerifier, HmacSm3Key, Sm2AuditVerifier, check_jsonl
from ebank_auth.audit.log import audit_store_keys, export_store_jsonl
from ebank_auth.audit.records import check_records
from ebank_auth.crypto import sm2
from ebank_auth.errors import AuditIntegrityError, EbankAuthError
from ebank_auth.store import Store

from ._output import Group, emit, examples, info, json_option, renamed_option, verdict
from ._store import open_target

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


def store_from_target(target: str | None) -> Store:
    """Open a store from a URL, or a plain path as SQLite (None: the default store)."""
    return open_target(target)


def _is_jsonl(target: str | None) -> bool:
    if target is None or "://" in target:
        return False
    p = Path(target)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        return fh.read(16) != b"SQLite format 3\x00"


@click.group(cls=Group)
def audit() -> None:
    """Verify and export the tamper-evident audit log."""


@audit.command(
    epilog=examples(
        "ebank-auth audit verify sqlite:///var/lib/bank/auth.db --audit-key-file audit.key",
        "EBANK_AUTH_AUDIT_HMAC_KEY=00112233… ebank-auth audit verify audit.jsonl --json",
        "ebank-auth audit verify export.jsonl --public-key audit-pub.pem --min-seq 1000",
    )
)
@click.argument("target", required=False)
@click.option(
    "--audit-key-file",
    type=click.Path(dir_okay=False),
    help="The audit log's HMAC-SM3 key (hex or raw).",
)
@renamed_option("--hmac-key-file", "--audit-key-file")
@click.option(
    "--public-key", type=click.Path(dir_okay=False), help="SM2 public key PEM (SM2 logs)."
)
@click.option("--log", "log_name", default="audit", show_default=True, help="Log name.")
@click.option("--min-seq", default=0, type=click.IntRange(0), help="Records the log must hold.")
@json_option
def verify(
    target: str | None,
    audit_key_file: str | None,
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
        except EbankAuthError as exc:
            raise click.UsageError(f"cannot load the SM2 public key: {exc}") from None
    else:
        verifier = load_hmac_key(audit_key_file)
    if verifier is None:
        raise click.UsageError(
            f"give --audit-key-file, --public-key or set {KEY_ENV}: signatures must be checked"
        )
    if _is_jsonl(target):
        assert target is not None
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
    doc = report.to_json()
    doc.pop("ok", None)
    doc.pop("error", None)  # a failed log carries the error object instead
    if report.ok:
        verdict(
            True,
            doc,
            f"ok: log {log_name!r}: {report.records} records, {report.checkpoints} signed "
            f"checkpoints, last record {report.last_seq}",
        )
    where = "" if report.first_bad is None else f"record {report.first_bad}: "
    verdict(
        False,
        doc,
        f"invalid: log {log_name!r}: {where}{report.error}",
        error=AuditIntegrityError(str(report.error), first_bad=report.first_bad, report=report),
    )


@audit.command(
    epilog=examples(
        "ebank-auth audit export sqlite:///var/lib/bank/auth.db --out audit.jsonl",
        "ebank-auth audit export --out - | gzip > audit.jsonl.gz",
    )
)
@click.argument("target", required=False)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSONL file to write ('-' for stdout).",
)
@click.option("--log", "log_name", default="audit", show_default=True, help="Log name.")
@json_option
def export(target: str | None, out_path: str, log_name: str, as_json: bool) -> None:
    """Export the log of store TARGET as JSONL (records, then the signed head)."""
    if as_json and out_path == "-":
        raise click.UsageError("--json reports on stdout: give --out FILE")
    store = store_from_target(target)
    try:
        if out_path == "-":
            n = export_store_jsonl(store, sys.stdout, log=log_name)
        else:
            with open(out_path, "w", encoding="utf-8", newline="\n") as fh:
                n = export_store_jsonl(store, fh, log=log_name)
    finally:
        store.close()
    if as_json:
        emit({"records": n, "out": out_path})
    else:
        info(f"exported {n} records")
