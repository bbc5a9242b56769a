"""``ebank-auth audit``: verify and export the tamper-evident audit log.

    ebank-auth audit verify [TARGET] [--audit-key-file F | --public-key PEM]
                            [--anchor FILE] [--min-seq N]
    ebank-auth audit anchor [TARGET] [--audit-key-file F | --public-key PEM] --out FILE
    ebank-auth audit export [STORE] --out FILE

TARGET is a JSONL export, a store URL (``sqlite:///path.db``, ``redis://…``,
``postgresql://…``) or the path of a SQLite store; without it, the default store
(``EBANK_AUTH_STORE``, else SQLite under :func:`ebank_auth.paths.home`); a store that
does not exist is an error (nothing is created, no PostgreSQL table either), a log with
no record and no head is "not found".
The HMAC-SM3 key may also come from the environment variable
``EBANK_AUTH_AUDIT_HMAC_KEY`` (hex).  ``anchor`` verifies the log and writes its
signed head to FILE, to keep outside the store; ``verify --anchor FILE`` then
refuses a log rolled back to before it.  Exit 0: the log verifies; 1: it does not
(the first bad record is named), or is not found; 2: usage or input error; 3: the
store is unreachable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ebank_auth.audit import AuditReport, AuditVerifier, HmacSm3Key, Sm2AuditVerifier
from ebank_auth.audit.log import audit_store_keys, check_store, export_store_jsonl, read_jsonl
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
    """Open an existing store from a URL, or a plain path as SQLite (None: the default
    store); never creates one."""
    return open_target(target, must_exist=True)


def _verifier(audit_key_file: str | None, public_key: str | None) -> AuditVerifier:
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
    return verifier


def _check(
    target: str | None,
    verifier: AuditVerifier,
    log_name: str,
    *,
    min_seq: int = 0,
    anchor: bytes | None = None,
) -> tuple[AuditReport, bytes | None]:
    """Check the log in TARGET (a JSONL export or a store); the report and its head."""
    if _is_jsonl(target):
        assert target is not None
        with open(target, encoding="utf-8", newline="\n") as fh:
            records, head = read_jsonl(fh)
        report = check_records(
            records, head, verifier, log=log_name, min_seq=min_seq, anchor=anchor
        )
        return report, head
    store = store_from_target(target)
    try:
        report = check_store(
            store, verifier, log=log_name, min_seq=min_seq, anchor=anchor, must_exist=True
        )
        head = store.get(audit_store_keys(log_name)[1]) if report.ok else None
    finally:
        store.close()
    return report, head


_NO_ANCHOR = (
    "not anchored: a roll-back of the store to an older signed state cannot be detected "
    "(keep 'ebank-auth audit anchor' output elsewhere and pass --anchor)"
)


def _is_jsonl(target: str | None) -> bool:
    if target is None or "://" in target:
        return False
    p = Path(target)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        return fh.read(16) != b"SQLite format 3\x00"


def _log_and_key_options(command: Callable[..., None]) -> Callable[..., None]:
    """TARGET, the audit key (HMAC-SM3 file or SM2 public key) and the log name: the options
    every command that checks a log's signatures takes."""
    for decorate in reversed(
        (
            click.argument("target", required=False),
            click.option(
                "--audit-key-file",
                type=click.Path(dir_okay=False),
                help="The audit log's HMAC-SM3 key (hex or raw).",
            ),
            renamed_option("--hmac-key-file", "--audit-key-file"),
            click.option(
                "--public-key",
                type=click.Path(dir_okay=False),
                help="SM2 public key PEM (SM2 logs).",
            ),
            click.option("--log", "log_name", default="audit", show_default=True, help="Log name."),
        )
    ):
        command = decorate(command)
    return command


@click.group(cls=Group)
def audit() -> None:
    """Verify and export the tamper-evident audit log."""


@audit.command(
    epilog=examples(
        "ebank-auth audit verify sqlite:///var/lib/bank/auth.db --audit-key-file audit.key",
        "EBANK_AUTH_AUDIT_HMAC_KEY=00112233… ebank-auth audit verify audit.jsonl --json",
        "ebank-auth audit verify export.jsonl --public-key audit-pub.pem --min-seq 1000",
        "ebank-auth audit verify postgresql://auditor@db.bank/ebank --audit-key-file audit.key",
    )
)
@_log_and_key_options
@click.option("--min-seq", default=0, type=click.IntRange(0), help="Records the log must hold.")
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False),
    help="A signed head saved by 'audit anchor': refuse a log older than it.",
)
@json_option
def verify(
    target: str | None,
    audit_key_file: str | None,
    public_key: str | None,
    log_name: str,
    min_seq: int,
    anchor_file: str | None,
    as_json: bool,
) -> None:
    """Verify the hash chain, checkpoints and signed head of TARGET."""
    verifier = _verifier(audit_key_file, public_key)
    anchor = Path(anchor_file).read_bytes() if anchor_file else None
    report, _ = _check(target, verifier, log_name, min_seq=min_seq, anchor=anchor)
    doc = report.to_json()
    doc.pop("ok", None)
    doc.pop("error", None)  # a failed log carries the error object instead
    if report.ok:
        verdict(
            True,
            doc,
            f"ok: log {log_name!r}: {report.records} records, {report.checkpoints} signed "
            f"checkpoints, last record {report.last_seq}; "
            + ("anchored" if report.anchored else _NO_ANCHOR),
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
        "ebank-auth audit anchor sqlite:///var/lib/bank/auth.db --audit-key-file audit.key "
        "--out /mnt/worm/audit-anchor.json",
        "ebank-auth audit verify sqlite:///var/lib/bank/auth.db --audit-key-file audit.key "
        "--anchor /mnt/worm/audit-anchor.json",
    )
)
@_log_and_key_options
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="File for the signed head ('-' for stdout); keep it outside the store.",
)
@json_option
def anchor(
    target: str | None,
    audit_key_file: str | None,
    public_key: str | None,
    log_name: str,
    out_path: str,
    as_json: bool,
) -> None:
    """Verify TARGET's log and save its signed head as an outside anchor."""
    if as_json and out_path == "-":
        raise click.UsageError("--json reports on stdout: give --out FILE")
    verifier = _verifier(audit_key_file, public_key)
    report, head = _check(target, verifier, log_name)
    if not report.ok or head is None or report.last_seq == 0:
        doc = report.to_json()
        doc.pop("ok", None)
        doc.pop("error", None)
        error = report.error or f"log {log_name!r} is empty: nothing to anchor"
        verdict(
            False,
            doc,
            f"invalid: log {log_name!r}: not anchored: {error}",
            error=AuditIntegrityError(error, first_bad=report.first_bad, report=report),
        )
    line = head.decode("ascii") + "\n"
    if out_path == "-":
        click.echo(line, nl=False)
        return
    with open(out_path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(line)
    doc = {"out": out_path, "last_seq": report.last_seq, "last_hash": report.last_hash}
    if as_json:
        emit(doc)
    else:
        info(f"anchored log {log_name!r} at record {report.last_seq} in {out_path}")


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
