"""Audit record format and the log checker (AU-10).

Every record is one canonical JSON object (UTF-8, keys sorted, no white space,
no NaN) stored as one entry of the store's append-only log.  Fields:

``v``        format version (1)
``kind``     ``"event"`` or ``"checkpoint"``
``seq``      1, 2, 3 … — gap-free, equal to the store's sequence number
``prev``     SM3 (hex) of the previous record; record 1 uses
             SM3("ebank-auth audit v1" 0x00 log-name) so logs cannot be spliced
``time``     ISO 8601 with offset
``hash``     SM3 (hex) of the record's canonical JSON without ``hash``

Event records add ``event``, ``user``, ``ip``, ``device``, ``client_type``,
``os_version``, ``outcome``, ``rules`` (fired rule ids), ``tx`` (masked
transaction summary or null) and ``details`` (text → text).

Checkpoint records add ``covers`` (= seq - 1), ``alg``, ``key_id`` and ``sig``:
a signature (HMAC-SM3 or SM2) over the canonical JSON without ``sig`` and ``hash``.

The *signed head* — ``{"v": 2, "kind": "head", "log", "seq", "hash", "time", "alg",
"key_id", "sig"}`` — names the last record and its hash; its signature covers every
field but ``sig`` (format 1 heads of ebank-auth 0.1.0 left ``hash`` unsigned and are
refused).  It is kept next to the log (store key ``audit:<log>:head``) and written as
the last line of a JSONL export.  Because it is re-signed on every append, removing
records from the end (truncation) is detected as surely as changes in the middle.
A copy of a head kept elsewhere is an *anchor*: a log that no longer holds the
anchored record with the anchored hash was rolled back or replaced.

The *signed intent* — ``{"v": 2, "kind": "intent", "log", "seq", "hash",
"pending", "time", "alg", "key_id", "sig"}`` — is written by the writer before it
appends: it names the head it builds on (``seq``, ``hash``) and the hashes of the
records it is about to append (``pending``).  After a crash the next writer adopts
only records named there, so records appended without the key are never re-signed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ebank_auth.audit.signing import AuditSigner, AuditVerifier
from ebank_auth.crypto import sm3
from ebank_auth.errors import AuditIntegrityError, CryptoError, EncodingError, StoreIntegrityError

__all__ = [
    "FORMAT_VERSION",
    "HEAD_VERSION",
    "AuditReport",
    "canonical_json",
    "check_records",
    "genesis_hash",
    "parse_record",
    "record_hash",
    "sign_fields",
]

FORMAT_VERSION = 1  # records
HEAD_VERSION = 2  # signed heads and intents: the signature covers every field but sig
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_HEX = re.compile(r"(?:[0-9a-f]{2})+", re.ASCII)

_COMMON = {"v": int, "kind": str, "seq": int, "prev": str, "time": str, "hash": str}
_EVENT = {
    **_COMMON,
    "event": str,
    "user": str,
    "ip": str,
    "device": str,
    "client_type": str,
    "os_version": str,
    "outcome": str,
    "rules": list,
    "tx": (dict, type(None)),
    "details": dict,
}
_CHECKPOINT = {**_COMMON, "covers": int, "alg": str, "key_id": str, "sig": str}
_HEAD = {
    "v": int,
    "kind": str,
    "log": str,
    "seq": int,
    "hash": str,
    "time": str,
    "alg": str,
    "key_id": str,
    "sig": str,
}
_INTENT = {**_HEAD, "pending": list}


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The one byte string for a record: sorted keys, no spaces, ASCII (\\u escapes)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("utf-8")


def genesis_hash(log: str) -> str:
    """The ``prev`` of record 1 of ``log``."""
    return sm3.digest(b"ebank-auth audit v1\x00" + log.encode("utf-8")).hex()


def record_hash(record: Mapping[str, Any]) -> str:
    """SM3 (hex) of the record without its ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return sm3.digest(canonical_json(body)).hex()


def sign_fields(record: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's, head's or intent's ``sig`` covers: every field but
    ``sig`` -- and, for a checkpoint, its ``hash``, which is computed over the
    signature.  A head's ``hash`` is what it seals, so it is signed."""
    skip = ("sig",) if record.get("kind") in ("head", "intent") else ("sig", "hash")
    return canonical_json({k: v for k, v in record.items() if k not in skip})


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise EncodingError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise EncodingError(f"{name} is not allowed")


def _check_schema(obj: dict[str, Any], schema: Mapping[str, Any]) -> None:
    if set(obj) != set(schema):
        extra = sorted(set(obj) - set(schema))
        missing = sorted(set(schema) - set(obj))
        raise EncodingError(f"wrong fields (unexpected {extra}, missing {missing})")
    for key, kind in schema.items():
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise EncodingError(f"field {key!r} has the wrong type")


def parse_record(raw: bytes, *, head: bool = False, intent: bool = False) -> dict[str, Any]:
    """Parse one record (or a head, or an intent) strictly: canonical JSON with the
    exact fields."""
    try:
        obj = json.loads(
            bytes(raw).decode("utf-8"),
            object_pairs_hook=_no_dupes,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise EncodingError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EncodingError("not a JSON object")
    if canonical_json(obj) != bytes(raw):
        raise EncodingError("not in canonical form (sorted keys, no spaces)")
    kind = obj.get("kind")
    signed = head or intent
    if head and kind == "head" and obj.get("v") == 1:
        raise EncodingError(
            "a format 1 head (ebank-auth 0.1.0) does not sign the last record's hash and is "
            "not accepted: verify this log with 0.1.0, archive its export and start a new log"
        )
    if head:
        schema: Mapping[str, Any] = _HEAD
    elif intent:
        schema = _INTENT
    elif kind == "event":
        schema = _EVENT
    elif kind == "checkpoint":
        schema = _CHECKPOINT
    else:
        raise EncodingError(f"unknown record kind {kind!r}")
    _check_schema(obj, schema)
    if obj["v"] != (HEAD_VERSION if signed else FORMAT_VERSION):
        raise EncodingError(f"format version {obj['v']} is not supported")
    if head and kind != "head":
        raise EncodingError("not a signed head")
    if intent and (kind != "intent" or not all(_HEX64.fullmatch(str(h)) for h in obj["pending"])):
        raise EncodingError("not a signed intent")
    if not _HEX64.fullmatch(obj["hash"]) or ("prev" in obj and not _HEX64.fullmatch(obj["prev"])):
        raise EncodingError("hash fields must be 64 lower-case hex digits")
    if "sig" in obj and not _HEX.fullmatch(obj["sig"]):
        raise EncodingError("sig must be hex")
    if not signed and kind == "event":
        if not all(isinstance(r, str) for r in obj["rules"]):
            raise EncodingError("rules must be a list of strings")
        if not all(isinstance(v, str) for v in obj["details"].values()):
            raise EncodingError("details values must be strings")
    return obj


def make_head(log: str, seq: int, last_hash: str, time: str, signer: AuditSigner) -> bytes:
    """Build and sign the head naming record ``seq`` with hash ``last_hash``."""
    head: dict[str, Any] = {
        "v": HEAD_VERSION,
        "kind": "head",
        "log": log,
        "seq": seq,
        "hash": last_hash,
        "time": time,
        "alg": signer.alg,
        "key_id": signer.key_id,
    }
    head["sig"] = signer.sign(sign_fields(head)).hex()
    return canonical_json(head)


def make_intent(
    log: str, seq: int, last_hash: str, pending: list[str], time: str, signer: AuditSigner
) -> bytes:
    """Build and sign the intent to append records with hashes ``pending`` after record
    ``seq`` (hash ``last_hash``)."""
    intent: dict[str, Any] = {
        "v": HEAD_VERSION,
        "kind": "intent",
        "log": log,
        "seq": seq,
        "hash": last_hash,
        "pending": list(pending),
        "time": time,
        "alg": signer.alg,
        "key_id": signer.key_id,
    }
    intent["sig"] = signer.sign(sign_fields(intent)).hex()
    return canonical_json(intent)


@dataclass(frozen=True)
class AuditReport:
    """Outcome of checking a log.  ``first_bad`` is the position (= expected
    sequence number) of the first record that fails or is missing; None when the log
    is good or when the fault is in the signed head itself.  ``error`` says what is
    wrong in words a reviewer can act on."""

    ok: bool
    log: str
    records: int  # records read
    checkpoints: int  # signed checkpoints that verified
    last_seq: int  # last good sequence number
    last_hash: str | None
    first_bad: int | None
    error: str | None
    # True when an outside anchor (``anchor`` head or ``min_seq``) was checked; without
    # one, a roll-back of the whole store to an older signed state cannot be detected
    anchored: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "log": self.log,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "first_bad": self.first_bad,
            "error": self.error,
            "anchored": self.anchored,
        }

    def raise_for_status(self) -> None:
        """Raise errors.AuditIntegrityError (with ``first_bad`` and this report) unless ok."""
        if not self.ok:
            raise AuditIntegrityError(
                f"audit log {self.log!r} does not verify: {self.error}",
                first_bad=self.first_bad,
                report=self,
            )


def signature_problem(obj: Mapping[str, Any], verifier: AuditVerifier) -> str | None:
    """Why the signature of a checkpoint or head does not hold (None when it does)."""
    if obj["alg"] != verifier.alg or obj["key_id"] != verifier.key_id:
        return (
            f"signed with {obj['alg']} key {obj['key_id']}, but the verifying key is "
            f"{verifier.alg} key {verifier.key_id}"
        )
    try:
        verifier.verify(sign_fields(obj), bytes.fromhex(obj["sig"]))
    except CryptoError:
        return "signature does not verify (altered, or signed with another key)"
    return None


def _anchor_head(anchor: bytes, verifier: AuditVerifier, log: str) -> dict[str, Any] | str:
    """The parsed anchor, or why it cannot be used."""
    try:
        obj = parse_record(anchor.strip(), head=True)
    except EncodingError as exc:
        return f"is not a signed head: {exc.message}"
    problem = signature_problem(obj, verifier)
    if problem:
        return f"does not hold: {problem}"
    if obj["log"] != log:
        return f"belongs to log {obj['log']!r}, not {log!r}"
    return obj


def check_records(
    records: Iterable[tuple[int, bytes]],
    head: bytes | None,
    verifier: AuditVerifier,
    *,
    log: str = "audit",
    require_head: bool = True,
    min_seq: int = 0,
    anchor: bytes | None = None,
) -> AuditReport:
    """Verify a whole log: ``records`` are (position, bytes) pairs in order
    (position = the store's sequence number, or the line number of an export);
    ``head`` the signed head.  Outside anchors: ``min_seq``, the log is known to hold
    at least that many records; ``anchor``, a signed head saved earlier
    (:meth:`AuditLog.anchor`): the log must still hold the record it names, with the
    hash it names.  Without an anchor a roll-back of the log *and* its head to an
    older signed state cannot be detected (``AuditReport.anchored`` is False).
    Returns a report and never raises for a bad log (a store that cannot read a
    record is reported at that record): ``AuditLog.verify`` / ``verify_jsonl`` raise."""
    prev = genesis_hash(log)
    expected = 1
    count = checkpoints = 0
    anchored = min_seq > 0 or anchor is not None

    def report(**kw: Any) -> AuditReport:
        return AuditReport(log=log, records=count, checkpoints=checkpoints, anchored=anchored, **kw)

    def bad(pos: int, msg: str) -> AuditReport:
        return report(
            ok=False,
            last_seq=pos - 1,
            last_hash=prev if pos > 1 else None,
            first_bad=pos,
            error=f"record {pos}: {msg}",
        )

    def bad_head(
        msg: str, what: str = "the signed head (which seals the end of the log)"
    ) -> AuditReport:
        return report(
            ok=False,
            last_seq=expected - 1,
            last_hash=prev if expected > 1 else None,
            first_bad=None,
            error=f"{what} {msg}",
        )

    anchor_obj: dict[str, Any] | None = None
    if anchor is not None:
        parsed = _anchor_head(anchor, verifier, log)
        if isinstance(parsed, str):
            return bad_head(parsed, "the anchor (a signed head saved outside the store)")
        anchor_obj = parsed

    it = iter(records)
    while True:
        try:
            item = next(it, None)
        except StoreIntegrityError as exc:
            return bad(expected, f"unreadable: {exc.message}")
        if item is None:
            break
        position, raw = item
        count += 1
        if position != expected:
            return bad(expected, f"missing (the next record present is {position})")
        try:
            rec = parse_record(raw)
        except EncodingError as exc:
            return bad(expected, f"malformed: {exc.message}")
        if rec["seq"] != expected:
            return bad(
                expected,
                f"carries sequence number {rec['seq']} (records were "
                "inserted, deleted or reordered)",
            )
        if rec["prev"] != prev:
            return bad(
                expected,
                f"does not follow record {expected - 1}: the hash chain is broken "
                "(a record was altered, inserted or removed here)",
            )
        h = record_hash(rec)
        if rec["hash"] != h:
            return bad(expected, "content was altered (its hash does not match)")
        if rec["kind"] == "checkpoint":
            if rec["covers"] != expected - 1:
                return bad(expected, "checkpoint covers the wrong record")
            problem = signature_problem(rec, verifier)
            if problem:
                return bad(expected, f"checkpoint {problem}")
            checkpoints += 1
        if anchor_obj is not None and expected == anchor_obj["seq"] and h != anchor_obj["hash"]:
            return bad(
                expected,
                f"differs from the anchor saved at {anchor_obj['time']} (the history after "
                "the anchor was replaced)",
            )
        prev = h
        expected += 1

    last = expected - 1
    if last < min_seq:
        return bad(last + 1, f"missing: the log ends at {last} but must hold {min_seq} records")
    if anchor_obj is not None and last < anchor_obj["seq"]:
        return bad(
            last + 1,
            f"missing: the log ends at {last} but the anchor saved at {anchor_obj['time']} "
            f"names record {anchor_obj['seq']} (the log was rolled back or truncated)",
        )
    if head is None:
        if require_head and last > 0:
            return report(
                ok=False,
                last_seq=last,
                last_hash=prev,
                first_bad=last + 1,
                error=f"the signed head (which seals the end of the log) is missing: records "
                f"after record {last} may have been removed",
            )
    else:
        try:
            h_obj = parse_record(head, head=True)
        except EncodingError as exc:
            return bad_head(f"is malformed: {exc.message}")
        problem = signature_problem(h_obj, verifier)
        if problem:
            return bad_head(f"does not hold: {problem}")
        if h_obj["log"] != log:
            return bad_head(f"belongs to log {h_obj['log']!r}, not {log!r}")
        if h_obj["seq"] > last:
            return bad(
                last + 1,
                f"missing: the signed head names record {h_obj['seq']} but the log ends at "
                f"{last} (the tail was truncated)",
            )
        if h_obj["seq"] < last:
            return report(
                ok=False,
                last_seq=h_obj["seq"],
                last_hash=None,
                first_bad=h_obj["seq"] + 1,
                error=f"record {h_obj['seq'] + 1}: not covered by the signed head (appended "
                "without the key, or the writer stopped before re-signing the head)",
            )
        if h_obj["hash"] != prev:
            return bad(last, "differs from the signed head (the last record was altered)")
    return report(
        ok=True,
        last_seq=last,
        last_hash=prev if last else None,
        first_bad=None,
        error=None,
    )
