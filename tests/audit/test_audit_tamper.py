"""Hypothesis: every single modification, insertion, deletion, reordering or
truncation of a random audit log is detected; an untouched log verifies."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.audit import AuditLog, HmacSm3Key, canonical_json, parse_record
from ebank_auth.audit.records import check_records, record_hash
from ebank_auth.store import MemoryStore

KEY = HmacSm3Key(b"audit-tamper-key-0123456789abcde")

events = st.lists(
    st.tuples(
        st.sampled_from(["login", "transfer", "login_locked", "device_trusted"]),
        st.text(min_size=0, max_size=8),
        st.sampled_from(["allow", "step_up", "deny"]),
    ),
    min_size=1,
    max_size=12,
)


def build(evs: list[tuple[str, str, str]], every: int) -> tuple[list[bytes], bytes]:
    log = AuditLog(MemoryStore(), KEY, checkpoint_every=every)
    for event, user, outcome in evs:
        log.record(event, user=user, outcome=outcome, details={"n": str(len(user))})
    out = io.StringIO()
    log.export_jsonl(out)
    lines = out.getvalue().split("\n")[:-1]
    return [line.encode() for line in lines[:-1]], lines[-1].encode()


def check(records: list[bytes], head: bytes | None, min_seq: int = 0) -> object:
    return check_records(list(enumerate(records, 1)), head, KEY, min_seq=min_seq)


@given(events, st.integers(1, 5))
def test_untouched_log_verifies(evs: list[tuple[str, str, str]], every: int) -> None:
    records, head = build(evs, every)
    report = check(records, head)
    assert report.ok, report.error  # type: ignore[attr-defined]


def rehash(raw: bytes, **changes: object) -> bytes:
    """Change fields and recompute the record's own hash (a careful attacker)."""
    obj = parse_record(raw)
    obj.update(changes)
    obj["hash"] = record_hash(obj)
    return canonical_json(obj)


@given(events, st.integers(1, 5), st.data())
def test_every_single_tampering_is_detected(
    evs: list[tuple[str, str, str]], every: int, data: st.DataObject
) -> None:
    records, head = build(evs, every)
    n = len(records)
    kind = data.draw(
        st.sampled_from(
            [
                "modify",
                "modify_rehash",
                "flip_byte",
                "insert_copy",
                "insert_forged",
                "delete",
                "swap",
                "truncate",
                "truncate_with_head",
                "drop_head",
                "forge_head",
            ]
        )
    )
    i = data.draw(st.integers(0, n - 1))
    recs = list(records)
    h: bytes | None = head
    expect_first_bad: int | None = None
    min_seq = 0
    if kind == "modify":
        obj = json.loads(recs[i])
        obj["time"] = obj["time"][:-1] + ("1" if obj["time"][-1] != "1" else "2")
        recs[i] = canonical_json(obj)
        expect_first_bad = i + 1
    elif kind == "modify_rehash":
        obj = parse_record(recs[i])
        if obj["kind"] == "event":
            recs[i] = rehash(recs[i], outcome=obj["outcome"] + "x")
        else:
            recs[i] = rehash(recs[i], time=obj["time"] + "0")
    elif kind == "flip_byte":
        b = bytearray(recs[i])
        j = data.draw(st.integers(0, len(b) - 1))
        b[j] ^= data.draw(st.integers(1, 255))
        recs[i] = bytes(b)
        expect_first_bad = i + 1
    elif kind == "insert_copy":
        j = data.draw(st.integers(0, n))
        recs.insert(j, recs[i])
    elif kind == "insert_forged":
        j = data.draw(st.integers(0, n))
        obj = parse_record(recs[j - 1]) if j > 0 else None
        forged = {
            "v": 1,
            "kind": "event",
            "seq": j + 1,
            "prev": obj["hash"] if obj else parse_record(recs[0])["prev"],
            "time": "2026-01-01T00:00:00.000+08:00",
            "event": "login",
            "user": "mallory",
            "ip": "",
            "device": "",
            "client_type": "",
            "os_version": "",
            "outcome": "allow",
            "rules": [],
            "tx": None,
            "details": {},
        }
        forged["hash"] = record_hash(forged)
        recs.insert(j, canonical_json(forged))
    elif kind == "delete":
        del recs[i]
        expect_first_bad = i + 1
    elif kind == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i)) if n > 1 else i
        if j == i:
            recs.insert(i, recs[i])  # a one-record log: duplicate instead
        else:
            recs[i], recs[j] = recs[j], recs[i]
            expect_first_bad = min(i, j) + 1
    elif kind == "truncate":
        # records and head removed: detected by the missing head, or -- when
        # nothing at all is left -- only by an outside anchor (min_seq)
        recs = recs[:i]
        h = None
        min_seq = 1 if i == 0 else 0
    elif kind == "truncate_with_head":
        recs = recs[:i]
        expect_first_bad = i + 1
    elif kind == "drop_head" or n == 1:
        h = None
    else:  # forge_head: point the head at an earlier record, keep the old signature
        i = min(i, n - 2)
        obj = json.loads(head)
        target = parse_record(recs[i])
        obj["seq"], obj["hash"] = i + 1, target["hash"]
        h = canonical_json(obj)
        recs = recs[: i + 1]
    report = check(recs, h, min_seq)
    assert not report.ok, kind  # type: ignore[attr-defined]
    if kind == "forge_head" and h is not None:  # the head itself is bad, not a record
        assert report.error.startswith("the signed head")  # type: ignore[attr-defined]
    else:
        assert report.first_bad is not None  # type: ignore[attr-defined]
    if expect_first_bad is not None:
        assert report.first_bad == expect_first_bad, (kind, report.error)  # type: ignore[attr-defined]


@given(events, st.integers(1, 5), st.data())
def test_rechained_suffix_with_patched_head_is_detected(
    evs: list[tuple[str, str, str]], every: int, data: st.DataObject
) -> None:
    """Issue 11 item 1 (attack without the key): rewrite record i, re-chain every
    record after it and put the new last hash into the head, keeping its signature.
    A later checkpoint catches it, else the head's signature (which covers its hash)."""
    records, head = build(evs, every)
    n = len(records)
    i = data.draw(st.integers(0, n - 1))
    recs = list(records)
    prev = parse_record(recs[i - 1])["hash"] if i else None
    for j in range(i, n):
        obj = parse_record(recs[j])
        if prev is not None:
            obj["prev"] = prev
        if j == i:
            obj["time"] = obj["time"] + "0"
        obj["hash"] = record_hash(obj)
        prev = obj["hash"]
        recs[j] = canonical_json(obj)
    forged = json.loads(head)
    forged["hash"] = prev
    report = check(recs, canonical_json(forged))
    assert not report.ok  # type: ignore[attr-defined]
    assert report.first_bad is not None or report.error.startswith("the signed head")  # type: ignore[attr-defined]
