"""The tamper-evident audit log on a store's append-only log (AU-10).

Writers serialise through a short lock held in the store itself
(``put_if_absent`` with a TTL), so appends from many threads and processes form
one hash chain.  Each append:

1. takes the lock, reads the signed head and checks it matches the stored tail;
2. builds its records (seq, prev hash, own hash and, every ``checkpoint_every``
   records, a signed checkpoint) and stores a signed *intent* naming the head it
   builds on and the hashes of those records;
3. appends the records;
4. re-signs the head, drops the intent and releases the lock.

A writer that died between steps 2 and 4 leaves records after the head; the
next writer adopts them only if they are exactly records named by the signed
intent (its own), and records an ``audit_head_recovered`` event so a reviewer
sees it.  Records after the head that no intent names were appended without the
key: they are never adopted or re-signed, and every append refuses until the log
is investigated.  A head that does not match the log (truncated, altered) stops
all appends with :class:`AuditIntegrityError` — fail closed.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import IO, Any

from ebank_auth.audit.records import (
    FORMAT_VERSION,
    AuditReport,
    canonical_json,
    check_records,
    genesis_hash,
    make_head,
    make_intent,
    parse_record,
    record_hash,
    sign_fields,
    signature_problem,
)
from ebank_auth.audit.signing import AuditSigner, AuditVerifier
from ebank_auth.errors import (
    AuditError,
    AuditIntegrityError,
    ConfigurationError,
    EncodingError,
    StoreIntegrityError,
)
from ebank_auth.localtime import DEFAULT_TIMEZONE
from ebank_auth.masking import mask_card, mask_name
from ebank_auth.store.base import LogRecord, Store
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.transaction import Transaction, format_amount

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditRecordRef",
    "audit_store_keys",
    "check_jsonl",
    "check_store",
    "export_store_jsonl",
    "read_jsonl",
    "transaction_summary",
    "verify_jsonl",
]

log = logging.getLogger(__name__)


def transaction_summary(tx: Transaction) -> dict[str, str]:
    """Masked summary of a transaction for the audit log (AU-10, AU-12): enough to
    reconstruct the event and match the full transaction by its SM3 digest."""
    return {
        "tx_id": tx.tx_id,
        "type": tx.tx_type,
        "payer": mask_card(tx.payer_account),
        "payee": mask_card(tx.payee_account),
        "payee_name": mask_name(tx.payee_name),
        "amount": format_amount(tx.amount),
        "currency": tx.currency,
        "time": tx.to_dict()["timestamp"],
        "digest": tx.digest().hex(),
    }


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened: who, from where (AU-3), what, and the outcome."""

    event: str  # e.g. login, transfer, login_locked, device_trusted
    user: str = ""
    ip: str = ""
    device: str = ""
    client_type: str = ""
    os_version: str = ""
    outcome: str = ""  # allow / step_up / deny / ok / failed …
    rules: tuple[str, ...] = ()  # policy rules that fired
    tx: Mapping[str, str] | None = None  # masked summary (transaction_summary)
    details: Mapping[str, str] = field(default_factory=dict)  # masked extra facts

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise AuditError("an audit event needs a non-empty event name")
        for name in ("user", "ip", "device", "client_type", "os_version", "outcome"):
            if not isinstance(getattr(self, name), str):
                raise AuditError(f"audit field {name} must be text")
        if not all(isinstance(r, str) for r in self.rules):
            raise AuditError("audit rules must be text")
        for mapping in (self.details, self.tx or {}):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
                raise AuditError("audit details and tx summary must map text to text")


@dataclass(frozen=True)
class AuditRecordRef:
    """Where an appended record landed."""

    seq: int
    hash: str


class AuditLog:
    """Append-only, hash-chained, signed audit log in a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        signer: AuditSigner,
        *,
        log: str = "audit",
        namespace: str = "audit",
        checkpoint_every: int = 100,
        tz: tzinfo = DEFAULT_TIMEZONE,
        lock_ttl: float = 30.0,
        lock_wait: float = 30.0,
    ) -> None:
        if checkpoint_every < 1:
            raise ConfigurationError("checkpoint_every must be at least 1")
        if not log or not isinstance(log, str):
            raise ConfigurationError("audit log name must be non-empty text")
        self.store = store
        self.signer = signer
        self.log = log
        self.checkpoint_every = checkpoint_every
        self.tz = tz
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.namespace = check_namespace(namespace)
        self._log_key, self._head_key = audit_store_keys(log, namespace=namespace)
        self._lock_key = store_key(namespace, log, "lock")
        self._intent_key = store_key(namespace, log, "intent")
        self._local = threading.Lock()

    # ------------------------------------------------------------------ locking
    def _acquire(self) -> bytes:
        token = secrets.token_bytes(16)
        deadline = time.monotonic() + self.lock_wait
        delay = 0.0005
        while not self.store.put_if_absent(self._lock_key, token, ttl=self.lock_ttl):
            if time.monotonic() > deadline:
                raise AuditError(
                    f"audit log {self.log!r} is locked by another writer for too long: "
                    "check for a stuck process"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return token

    def _release(self, token: bytes) -> None:
        self.store.compare_and_set(self._lock_key, token, None)

    # ------------------------------------------------------------------ head
    def _now(self) -> str:
        return datetime.fromtimestamp(self.store.clock(), self.tz).isoformat(
            timespec="milliseconds"
        )

    def _tail(self) -> tuple[int, str, list[tuple[int, str]]]:
        """(seq, hash) of the verified tail, plus this writer's own records found after
        the head (left by a writer that died before re-signing it)."""
        raw_head = self.store.get(self._head_key)
        if raw_head is None:
            records = list(self.store.read_log(self._log_key, start=1))
            if records:
                return self._recover(0, genesis_hash(self.log), records, headless=True)
            return 0, genesis_hash(self.log), []
        try:
            head = parse_record(raw_head, head=True)
        except EncodingError as exc:
            raise AuditIntegrityError(f"audit head is malformed: {exc.message}") from None
        if head["log"] != self.log or signature_problem(head, self.signer) is not None:
            raise AuditIntegrityError(
                "the audit log's signed head does not verify with this writer's key (wrong "
                "key configured, or the head was altered): run 'ebank-auth audit verify'"
            )
        seq: int = head["seq"]
        last: str = head["hash"]
        extra: list[LogRecord] = []
        found = False
        for rec in self.store.read_log(self._log_key, start=seq):
            if found:
                extra.append(rec)
                continue
            if rec.seq != seq:
                raise AuditIntegrityError(
                    f"audit log does not match its signed head at record {seq}: "
                    "run 'ebank-auth audit verify'",
                    first_bad=seq,
                )
            try:
                obj = parse_record(rec.data)
            except EncodingError:
                obj = {}
            if obj.get("hash") != last or record_hash(obj) != last:
                raise AuditIntegrityError(
                    f"audit record {seq} differs from the signed head: run "
                    "'ebank-auth audit verify'",
                    first_bad=seq,
                )
            found = True
        if not found:
            raise AuditIntegrityError(
                f"audit record {seq} named by the signed head is missing: the log was "
                "truncated; run 'ebank-auth audit verify'",
                first_bad=seq,
            )
        if extra:
            return self._recover(seq, last, extra, headless=False)
        return seq, last, []

    def _recover(
        self, seq: int, last: str, extra: list[LogRecord], *, headless: bool
    ) -> tuple[int, str, list[tuple[int, str]]]:
        """Adopt the records after the head only if they are exactly the records this
        log's signed intent (based on this head) names: a crashed writer's own."""
        pending: list[str] = []
        raw_intent = self.store.get(self._intent_key)
        if raw_intent is not None:
            try:
                intent = parse_record(raw_intent, intent=True)
            except EncodingError:
                intent = None
            if (
                intent is not None
                and intent["log"] == self.log
                and intent["seq"] == seq
                and intent["hash"] == last
                and signature_problem(intent, self.signer) is None
            ):
                pending = intent["pending"]
        adopted: list[tuple[int, str]] = []
        prev = last
        for i, rec in enumerate(extra):
            expected = seq + i + 1
            try:
                obj: dict[str, Any] | None = parse_record(rec.data)
            except EncodingError:
                obj = None
            if (
                obj is None
                or i >= len(pending)
                or rec.seq != expected
                or obj["seq"] != expected
                or obj["prev"] != prev
                or record_hash(obj) != obj["hash"]
                or obj["hash"] != pending[i]
            ):
                where = (
                    "the audit log has records but no signed head (the head was deleted or "
                    "the log truncated)"
                    if headless
                    else f"audit record {rec.seq} after the signed head"
                )
                raise AuditIntegrityError(
                    f"{where}: record {rec.seq} was not written by this log's writer (no "
                    "signed intent names it), so it was appended without the key; appends "
                    "are refused until the log is investigated: run 'ebank-auth audit verify'",
                    first_bad=rec.seq,
                )
            adopted.append((expected, obj["hash"]))
            prev = obj["hash"]
        return adopted[-1][0], adopted[-1][1], adopted

    # ------------------------------------------------------------------ append
    def _build(self, seq: int, prev: str, body: dict[str, Any]) -> tuple[bytes, str]:
        """Record ``seq + 1`` after hash ``prev``: its bytes and its hash."""
        rec: dict[str, Any] = {"v": FORMAT_VERSION, "seq": seq + 1, "prev": prev, **body}
        if rec["kind"] == "checkpoint":
            rec["covers"] = seq
            rec["alg"] = self.signer.alg
            rec["key_id"] = self.signer.key_id
            rec["sig"] = self.signer.sign(sign_fields(rec)).hex()
        rec["hash"] = record_hash(rec)
        return canonical_json(rec), rec["hash"]

    def _event_body(self, ev: AuditEvent, when: str) -> dict[str, Any]:
        return {
            "kind": "event",
            "time": when,
            "event": ev.event,
            "user": ev.user,
            "ip": ev.ip,
            "device": ev.device,
            "client_type": ev.client_type,
            "os_version": ev.os_version,
            "outcome": ev.outcome,
            "rules": list(ev.rules),
            "tx": dict(ev.tx) if ev.tx is not None else None,
            "details": dict(ev.details),
        }

    def _write(self, events: Sequence[AuditEvent], force_checkpoint: bool) -> AuditRecordRef:
        with self._local:
            token = self._acquire()
            try:
                return self._write_locked(events, force_checkpoint)
            except StoreIntegrityError as exc:
                raise AuditIntegrityError(
                    f"the audit log cannot be read: {exc.message}; run 'ebank-auth audit verify'"
                ) from None
            finally:
                self._release(token)

    def _write_locked(self, events: Sequence[AuditEvent], force_checkpoint: bool) -> AuditRecordRef:
        seq, last, extra = self._tail()
        base_seq, base_hash = seq, last
        when = self._now()
        bodies = [self._event_body(e, when) for e in events]
        if extra:
            log.warning(
                "audit log %s: recovered %d record(s) a writer appended before it stopped",
                self.log,
                len(extra),
            )
            bodies.insert(
                0,
                self._event_body(
                    AuditEvent(
                        "audit_head_recovered",
                        outcome="warning",
                        details={"from_seq": str(extra[0][0]), "to_seq": str(extra[-1][0])},
                    ),
                    when,
                ),
            )
        planned: list[tuple[bytes, str]] = []
        ref_seq, ref_hash = seq, last
        last_is_checkpoint = False
        checkpoint = {"kind": "checkpoint", "time": when}
        for body in bodies:
            raw, last = self._build(seq, last, body)
            seq += 1
            planned.append((raw, last))
            ref_seq, ref_hash, last_is_checkpoint = seq, last, False
            if seq % self.checkpoint_every == 0:
                raw, last = self._build(seq, last, checkpoint)
                seq += 1
                planned.append((raw, last))
                last_is_checkpoint = True
        if force_checkpoint:
            if not planned and seq:
                last_is_checkpoint = parse_record(self._record_bytes(seq))["kind"] == "checkpoint"
            if not last_is_checkpoint:
                raw, last = self._build(seq, last, checkpoint)
                seq += 1
                planned.append((raw, last))
                ref_seq, ref_hash = seq, last
        if not planned:
            return AuditRecordRef(ref_seq, ref_hash)
        # the signed intent names exactly the records about to be appended, so a writer
        # that dies before re-signing the head leaves records the next one can tell apart
        # from records appended without the key
        intent = make_intent(
            self.log, base_seq, base_hash, [h for _, h in planned], when, self.signer
        )
        self.store.compare_and_set(self._intent_key, self.store.get(self._intent_key), intent)
        for i, (raw, _) in enumerate(planned):
            got = self.store.append(self._log_key, raw)
            if got != base_seq + i + 1:
                raise AuditIntegrityError(
                    f"the store gave sequence number {got} where {base_seq + i + 1} was "
                    "expected: something else writes to this log",
                    first_bad=base_seq + i + 1,
                )
        head = make_head(self.log, seq, last, when, self.signer)
        self.store.compare_and_set(self._head_key, self.store.get(self._head_key), head)
        self.store.compare_and_set(self._intent_key, intent, None)
        return AuditRecordRef(ref_seq, ref_hash)

    def _record_bytes(self, seq: int) -> bytes:
        rec = next(iter(self.store.read_log(self._log_key, start=seq)))
        return rec.data

    def append(self, event: AuditEvent) -> AuditRecordRef:
        """Append one event; returns its sequence number and hash."""
        return self._write([event], False)

    def record(
        self,
        event: str,
        *,
        user: str = "",
        ip: str = "",
        device: str = "",
        client_type: str = "",
        os_version: str = "",
        outcome: str = "",
        rules: Sequence[str] = (),
        tx: Transaction | None = None,
        details: Mapping[str, str] | None = None,
    ) -> AuditRecordRef:
        """Convenience: build an :class:`AuditEvent` (masking ``tx``) and append it."""
        return self.append(
            AuditEvent(
                event=event,
                user=user,
                ip=ip,
                device=device,
                client_type=client_type,
                os_version=os_version,
                outcome=outcome,
                rules=tuple(rules),
                tx=transaction_summary(tx) if tx is not None else None,
                details=dict(details or {}),
            )
        )

    def checkpoint(self) -> AuditRecordRef:
        """Append a signed checkpoint now (unless the last record is one)."""
        return self._write([], True)

    # ------------------------------------------------------------------ reading
    def raw_records(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        """(store sequence number, record bytes) from ``start``."""
        for rec in self.store.read_log(self._log_key, start=start):
            yield rec.seq, rec.data

    def records(self) -> Iterator[dict[str, Any]]:
        """Parsed records in order (no verification: use :meth:`verify` or :meth:`check`)."""
        for _, raw in self.raw_records():
            yield parse_record(raw)

    def head(self) -> bytes | None:
        """The signed head as stored."""
        return self.store.get(self._head_key)

    def verify(
        self,
        verifier: AuditVerifier | None = None,
        *,
        min_seq: int = 0,
        anchor: bytes | None = None,
    ) -> None:
        """Verify the whole log and its signed head; raises errors.AuditIntegrityError
        (with ``first_bad`` and ``report``) when a record or the head does not hold, or
        the log is older than ``anchor`` (a head saved earlier with :meth:`anchor`)."""
        self.check(verifier, min_seq=min_seq, anchor=anchor).raise_for_status()

    def check(
        self,
        verifier: AuditVerifier | None = None,
        *,
        min_seq: int = 0,
        anchor: bytes | None = None,
    ) -> AuditReport:
        """Check the whole log and its signed head; returns the report, never raises for a
        bad log (use :meth:`verify` to refuse one).  Without ``anchor`` or ``min_seq`` a
        roll-back of the store to an older signed state cannot be detected
        (``report.anchored`` is False)."""
        return check_store(
            self.store,
            verifier or self.signer,
            log=self.log,
            namespace=self.namespace,
            min_seq=min_seq,
            anchor=anchor,
        )

    def anchor(self, verifier: AuditVerifier | None = None) -> bytes:
        """Verify the log and return its signed head, to be kept *outside* the store
        (another machine, a WORM bucket, a ticket): later, ``check(anchor=...)`` /
        ``ebank-auth audit verify --anchor FILE`` refuses a log that no longer holds the
        anchored record with the anchored hash (rolled back, truncated or replaced)."""
        report = self.check(verifier)
        report.raise_for_status()
        head = self.head()
        if head is None or report.last_seq == 0:
            raise AuditError(f"audit log {self.log!r} is empty: write to it before anchoring it")
        return head

    def export_jsonl(self, out: IO[str]) -> int:
        """Write every record, one per line, then the signed head; returns records written."""
        return export_store_jsonl(self.store, out, log=self.log, namespace=self.namespace)


def audit_store_keys(log: str = "audit", *, namespace: str = "audit") -> tuple[str, str]:
    """The store keys of audit log ``log``: (its record log, its signed head)."""
    return store_key(namespace, log), store_key(namespace, log, "head")


def check_store(
    store: Store,
    verifier: AuditVerifier,
    *,
    log: str = "audit",
    namespace: str = "audit",
    min_seq: int = 0,
    anchor: bytes | None = None,
    must_exist: bool = False,
) -> AuditReport:
    """Check log ``log`` in ``store`` (records, checkpoints, signed head, optional
    anchor); returns the report.  A value the store cannot read (edited by hand) is
    reported as that record, or the head, being bad.  ``must_exist``: a log with no
    records and no head (a misspelt store or log name, or an erased log) is not ok."""
    key, head_key = audit_store_keys(log, namespace=namespace)
    head_error: str | None = None
    try:
        head = store.get(head_key)
    except StoreIntegrityError as exc:
        head, head_error = None, exc.message
    records = ((r.seq, r.data) for r in store.read_log(key))
    report = check_records(
        records,
        head,
        verifier,
        log=log,
        min_seq=min_seq,
        anchor=anchor,
        require_head=head_error is None,
    )
    if head_error is not None and report.ok:
        return replace(
            report,
            ok=False,
            first_bad=None,
            error=f"the signed head (which seals the end of the log) is unreadable: {head_error}",
        )
    if must_exist and report.ok and report.records == 0 and head is None:
        return replace(
            report,
            ok=False,
            error=f"audit log {log!r} not found: the store holds no record and no signed head "
            "for it (check the store URL and the log name; an erased log looks the same, "
            "which only an anchor tells apart)",
        )
    return report


def export_store_jsonl(
    store: Store, out: IO[str], *, log: str = "audit", namespace: str = "audit"
) -> int:
    """Export ``log`` from ``store`` as JSONL: records covered by the signed head,
    one per line, then the head.  Needs no key.  Returns the records written."""
    key, head_key = audit_store_keys(log, namespace=namespace)
    head = store.get(head_key)
    head_seq = parse_record(head, head=True)["seq"] if head is not None else None
    count = 0
    for rec in store.read_log(key):
        if head_seq is not None and rec.seq > head_seq:
            break  # written after the head was read: not covered yet
        out.write(rec.data.decode("ascii") + "\n")
        count += 1
    if head is not None:
        out.write(head.decode("ascii") + "\n")
    return count


def read_jsonl(lines: Sequence[str] | IO[str]) -> tuple[list[tuple[int, bytes]], bytes | None]:
    """Split a JSONL export into (line number, record bytes) pairs and the head."""
    records: list[tuple[int, bytes]] = []
    rows = [line.rstrip("\n") for line in lines]
    while rows and not rows[-1]:
        rows.pop()
    head: bytes | None = None
    if rows and '"kind":"head"' in rows[-1]:
        head = rows.pop().encode("utf-8")
    for no, row in enumerate(rows, 1):
        records.append((no, row.encode("utf-8")))
    return records, head


def check_jsonl(
    lines: Sequence[str] | IO[str],
    verifier: AuditVerifier,
    *,
    log: str = "audit",
    min_seq: int = 0,
    anchor: bytes | None = None,
) -> AuditReport:
    """Check a JSONL export (records then the signed head); returns the report."""
    records, head = read_jsonl(lines)
    return check_records(records, head, verifier, log=log, min_seq=min_seq, anchor=anchor)


def verify_jsonl(
    lines: Sequence[str] | IO[str],
    verifier: AuditVerifier,
    *,
    log: str = "audit",
    min_seq: int = 0,
    anchor: bytes | None = None,
) -> None:
    """Verify a JSONL export; raises errors.AuditIntegrityError when it does not hold."""
    check_jsonl(lines, verifier, log=log, min_seq=min_seq, anchor=anchor).raise_for_status()
