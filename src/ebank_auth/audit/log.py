"""The tamper-evident audit log on a store's append-only log (AU-10).

Each write is one atomic step of the store (:meth:`Store.append_many`): the new
records (seq, prev hash, own hash and, every ``checkpoint_every`` records, a signed
checkpoint) *and* the re-signed head that seals them, on condition that the log still
ends at the record the writer built on and the head is still the one it read.  So a
record is durable exactly when the head covering it is, a crash leaves either the
whole batch or nothing, and writers in several processes form one chain: the loser of
a race gets :class:`~ebank_auth.errors.ConflictError` from the store, reads the end
again and rebuilds its batch.

Group commit (default on): concurrent writers in one process queue their events; the
first of them (the leader) writes everything queued as one batch with one commit (one
fsync on SQLite ``synchronous=FULL``, one WAL flush on PostgreSQL) and wakes each
writer with its own sequence number, or with the batch's error.

Before each batch the writer checks the durable end: the signed head must verify
(unless it is byte for byte the head this writer signed last) and match the stored
tail record; the store's conditions then make sure nothing changed until the commit.  Records after the head are never written by this version;
they are adopted only when they are exactly the records a *signed intent* of an
earlier version (which appended before re-signing the head) names, left by such a
writer that died in between, and an ``audit_head_recovered`` event records it.  Any
other record after the head was appended without the key: it is never adopted or
re-signed, and every append refuses until the log is investigated.  A head that does
not match the log (truncated, altered) stops all appends with
:class:`AuditIntegrityError` — fail closed.
"""

from __future__ import annotations

import copy
import logging
import os
import random
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
    ConflictError,
    EncodingError,
    StoreError,
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


@dataclass(frozen=True)
class _Tail:
    """The durable end of the log as this writer last knew it."""

    seq: int
    hash: str
    head: bytes | None  # the stored signed head (the swap's expected value)
    checkpoint: bool  # the last record is a checkpoint
    adopted: tuple[tuple[int, str], ...] = ()  # an older writer's records its intent names
    intent: bytes | None = None  # that intent (dropped once they are sealed)
    record: bytes | None = None  # the last record's bytes, as this writer wrote or checked them


@dataclass(frozen=True)
class _Plan:
    records: list[bytes]
    head: bytes
    refs: list[AuditRecordRef]
    tail: _Tail


class _Request:
    """One caller's events waiting for a batch (or a checkpoint request)."""

    __slots__ = ("done", "error", "events", "force_checkpoint", "ref", "wake")

    def __init__(self, events: Sequence[AuditEvent], force_checkpoint: bool) -> None:
        self.events = events
        self.force_checkpoint = force_checkpoint
        self.ref: AuditRecordRef | None = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()

    def outcome(self) -> AuditRecordRef:
        if self.error is not None:
            raise self.error
        if self.ref is None:  # pragma: no cover - a batch always settles every request
            raise AuditError("the audit write was interrupted: the event was not recorded")
        return self.ref


class AuditLog:
    """Append-only, hash-chained, signed audit log in a :class:`Store`.

    Every write returns only once its records *and* the signed head that seals them
    are durable in the store: one atomic :meth:`Store.append_many` that also swaps the
    head, conditional on the log still ending where this writer read it.

    ``group_commit`` (default on): concurrent writers of this object share one such
    step: the first waiting writer (the leader) takes every queued event (at most
    ``max_batch``), chains them in order, writes them with one commit (one fsync) and
    then wakes each writer with its own record; the next leader takes what queued up
    meanwhile.  ``max_wait`` (seconds, default 0) lets a leader wait for a fuller
    batch.  A batch that fails fails every writer in it with the store's error, and
    nothing of it is acknowledged.  ``group_commit=False``: each write is its own step.
    ``lock_wait``: seconds a write keeps trying while writers of other processes keep
    appending first (then :class:`~ebank_auth.errors.AuditError`).
    """

    def __init__(
        self,
        store: Store,
        signer: AuditSigner,
        *,
        log: str = "audit",
        namespace: str = "audit",
        checkpoint_every: int = 100,
        tz: tzinfo = DEFAULT_TIMEZONE,
        lock_wait: float = 30.0,
        group_commit: bool = True,
        max_batch: int = 128,
        max_wait: float = 0.0,
    ) -> None:
        if checkpoint_every < 1:
            raise ConfigurationError("checkpoint_every must be at least 1")
        if not log or not isinstance(log, str):
            raise ConfigurationError("audit log name must be non-empty text")
        if isinstance(max_batch, bool) or not 1 <= int(max_batch) <= 4096:
            raise ConfigurationError("max_batch must be 1 to 4096 events")
        if not 0 <= float(max_wait) <= 10:
            raise ConfigurationError("max_wait must be 0 to 10 seconds")
        if not float(lock_wait) > 0:
            raise ConfigurationError("lock_wait must be more than 0 seconds")
        self.store = store
        self.signer = signer
        self.log = log
        self.checkpoint_every = checkpoint_every
        self.tz = tz
        self.lock_wait = float(lock_wait)
        self.group_commit = bool(group_commit)
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self.namespace = check_namespace(namespace)
        self._log_key, self._head_key = audit_store_keys(log, namespace=namespace)
        self._intent_key = store_key(namespace, log, "intent")
        self._reset()

    def _reset(self) -> None:
        """Fresh in-process state (at start, and in a forked child: a parent's thread
        may have held the lock or led a batch when it forked)."""
        self._pid = os.getpid()
        self._local = threading.Lock()  # group_commit=False: one write at a time
        self._mutex = threading.Lock()  # guards the queue and the leader flag
        self._arrived = threading.Condition(self._mutex)  # a leader waiting (max_wait)
        self._queue: list[_Request] = []
        self._leading = False
        self._cached: _Tail | None = None  # the last end it wrote (only the leader uses it)

    # ------------------------------------------------------------------ head
    def _now(self) -> str:
        return datetime.fromtimestamp(self.store.clock(), self.tz).isoformat(
            timespec="milliseconds"
        )

    def _tail(self, known: _Tail | None = None) -> _Tail:
        """The verified durable end of the log, plus the records an older writer that
        died before re-signing the head left after it (only if its intent names them).
        ``known``: this writer's own last end; a stored head byte-identical to the one
        it signed then needs no signature check (the tail record is checked all the same)."""
        raw_head = self.store.get(self._head_key)
        if known is not None and known.head is not None and raw_head == known.head:
            return self._check_tail(known.seq, known.hash, raw_head, known)
        if raw_head is None:
            records = list(self.store.read_log(self._log_key, start=1))
            if records:
                self._head_unmoved(None)
                return self._recover(0, genesis_hash(self.log), None, records, headless=True)
            return _Tail(0, genesis_hash(self.log), None, False)
        try:
            head = parse_record(raw_head, head=True)
        except EncodingError as exc:
            raise AuditIntegrityError(f"audit head is malformed: {exc.message}") from None
        if head["log"] != self.log or signature_problem(head, self.signer) is not None:
            raise AuditIntegrityError(
                "the audit log's signed head does not verify with this writer's key (wrong "
                "key configured, or the head was altered): run 'ebank-auth audit verify'"
            )
        return self._check_tail(head["seq"], head["hash"], raw_head)

    def _check_tail(
        self, seq: int, last: str, raw_head: bytes, known: _Tail | None = None
    ) -> _Tail:
        """The log must hold record ``seq`` with hash ``last`` (what the head names);
        byte for byte the record this writer wrote or checked last (``known``) needs no
        parsing."""
        extra: list[LogRecord] = []
        kind: str | None = None
        data = b""
        for rec in self.store.read_log(self._log_key, start=seq):
            if kind is not None:
                extra.append(rec)
                continue
            data = rec.data
            if known is not None and rec.seq == seq and data == known.record:
                kind = "checkpoint" if known.checkpoint else "event"
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
            kind = str(obj["kind"])
        if kind is None:
            raise AuditIntegrityError(
                f"audit record {seq} named by the signed head is missing: the log was "
                "truncated; run 'ebank-auth audit verify'",
                first_bad=seq,
            )
        if extra:
            self._head_unmoved(raw_head)
            return self._recover(seq, last, raw_head, extra, headless=False)
        return _Tail(seq, last, raw_head, kind == "checkpoint", record=data)

    def _head_unmoved(self, raw_head: bytes | None) -> None:
        """Records after the head just read: if the head has moved meanwhile, another
        writer sealed them between the two reads (ConflictError: read again);
        otherwise nothing seals them."""
        if self.store.get(self._head_key) != raw_head:
            raise ConflictError("the audit head moved while the log was read: read it again")

    def _recover(
        self, seq: int, last: str, raw_head: bytes | None, extra: list[LogRecord], *, headless: bool
    ) -> _Tail:
        """Adopt the records after the head only if they are exactly the records this
        log's signed intent (based on this head) names: those of a writer of an earlier
        version (which appended before re-signing the head) that died in between.  This
        version never leaves records after the head: it writes them with the head."""
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
        kind = ""
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
            kind = str(obj["kind"])
        return _Tail(
            adopted[-1][0],
            adopted[-1][1],
            raw_head,
            kind == "checkpoint",
            tuple(adopted),
            raw_intent,
        )

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

    def _plan(self, tail: _Tail, batch: Sequence[_Request]) -> _Plan:
        """Chain the batch's records after ``tail``, in queue order, with automatic
        checkpoints every ``checkpoint_every`` records, and sign the new head."""
        seq, last, is_checkpoint = tail.seq, tail.hash, tail.checkpoint
        when = self._now()
        records: list[bytes] = []
        checkpoint = {"kind": "checkpoint", "time": when}

        def add(body: dict[str, Any]) -> AuditRecordRef:
            """Append ``body``'s record (and a checkpoint when one is due); returns
            where the record itself landed."""
            nonlocal seq, last, is_checkpoint
            raw, last = self._build(seq, last, body)
            seq += 1
            records.append(raw)
            ref = AuditRecordRef(seq, last)
            is_checkpoint = body["kind"] == "checkpoint"
            if not is_checkpoint and seq % self.checkpoint_every == 0:
                raw, last = self._build(seq, last, checkpoint)
                seq += 1
                records.append(raw)
                is_checkpoint = True
            return ref

        if tail.adopted:
            add(
                self._event_body(
                    AuditEvent(
                        "audit_head_recovered",
                        outcome="warning",
                        details={
                            "from_seq": str(tail.adopted[0][0]),
                            "to_seq": str(tail.adopted[-1][0]),
                        },
                    ),
                    when,
                )
            )
        refs: list[AuditRecordRef] = []
        for request in batch:
            ref = AuditRecordRef(seq, last)
            for event in request.events:
                ref = add(self._event_body(event, when))
            if request.force_checkpoint:
                ref = add(checkpoint) if not is_checkpoint else AuditRecordRef(seq, last)
            refs.append(ref)
        head = make_head(self.log, seq, last, when, self.signer) if records else b""
        if not records:
            return _Plan(records, head, refs, tail)
        return _Plan(records, head, refs, _Tail(seq, last, head, is_checkpoint, record=records[-1]))

    def _write(self, batch: Sequence[_Request]) -> list[AuditRecordRef]:
        """Write ``batch`` in one atomic step after the durable end of the log; on a
        conflict (another process appended first) read the end again and rebuild."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.0005
        while True:
            try:
                tail = self._tail(self._cached)
                plan = self._plan(tail, batch)
                if plan.records:
                    self.store.append_many(
                        self._log_key,
                        plan.records,
                        after=tail.seq,
                        swap=(self._head_key, tail.head, plan.head),
                    )
            except ConflictError:
                self._cached = None
                if time.monotonic() > deadline:
                    raise AuditError(
                        f"audit log {self.log!r}: other writers kept appending first for "
                        f"{self.lock_wait:g} s, the event was not recorded: check for a "
                        "runaway writer, or share one AuditLog per process"
                    ) from None
                time.sleep(random.uniform(0, delay))  # back-off jitter, not a secret
                delay = min(delay * 2, 0.02)
                continue
            except StoreIntegrityError as exc:
                self._cached = None
                raise AuditIntegrityError(
                    f"the audit log cannot be read: {exc.message}; run 'ebank-auth audit verify'"
                ) from None
            except BaseException:
                # the outcome is unknown (lost connection) or nothing was written: the
                # next batch starts again from what is durable
                self._cached = None
                raise
            self._cached = plan.tail
            if tail.adopted:
                log.warning(
                    "audit log %s: recovered %d record(s) a writer appended before it stopped",
                    self.log,
                    len(tail.adopted),
                )
                try:  # sealed now; a stale intent is harmless, so this is housekeeping
                    self.store.compare_and_set(self._intent_key, tail.intent, None)
                except StoreError:
                    log.debug("dropping the sealed intent failed", exc_info=True)
            return plan.refs

    def _settle(self, batch: Sequence[_Request], me: _Request) -> None:
        """Write ``batch`` and give every request its record or the batch's error
        (the leader's own request gets the original, the others a copy each)."""
        try:
            refs = self._write(batch)
        except Exception as exc:
            for request in batch:
                request.error = exc if request is me else copy.copy(exc)
            return
        except BaseException:
            for request in batch:
                request.error = AuditError(
                    "the audit write was interrupted: the event was not recorded"
                )
            raise
        for request, ref in zip(batch, refs, strict=True):
            request.ref = ref

    def _submit(self, request: _Request) -> AuditRecordRef:
        if os.getpid() != self._pid:
            self._reset()
        if not self.group_commit:
            with self._local:
                self._settle([request], request)
            return request.outcome()
        with self._mutex:
            self._queue.append(request)
            follower = self._leading
            if follower:
                self._arrived.notify()
            else:
                self._leading = True
        if follower:
            request.wake.wait()  # until our batch is done or we are made the leader
            if request.done:
                return request.outcome()
        while True:  # the leader: commit batches until our own request is done
            with self._mutex:
                if self.max_wait:
                    end = time.monotonic() + self.max_wait
                    while len(self._queue) < self.max_batch:
                        left = end - time.monotonic()
                        if left <= 0:
                            break
                        self._arrived.wait(left)
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            try:
                self._settle(batch, request)
            finally:
                for done in batch:
                    done.done = True
                    if done is not request:
                        done.wake.set()
                with self._mutex:
                    if not request.done:
                        pass  # still queued: lead the next batch ourselves
                    elif self._queue:
                        self._queue[0].wake.set()  # hand the lead to the oldest waiter
                    else:
                        self._leading = False
            if request.done:
                return request.outcome()

    def append(self, event: AuditEvent) -> AuditRecordRef:
        """Append one event; returns its sequence number and hash once it is durable."""
        return self._submit(_Request([event], False))

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
        return self._submit(_Request([], True))

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
