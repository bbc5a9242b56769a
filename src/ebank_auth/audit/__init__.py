"""Tamper-evident audit log (AU-10): hash-chained records on a store's
append-only log, signed checkpoints and a signed head (HMAC-SM3 or SM2),
verification naming the first bad record, JSONL export.

``AuditLog.verify()`` / ``verify_jsonl()`` raise ``errors.AuditIntegrityError``;
``AuditLog.check()`` / ``check_jsonl()`` / ``check_records()`` return an ``AuditReport``."""

from ebank_auth.audit.log import (
    AuditEvent,
    AuditLog,
    AuditRecordRef,
    check_jsonl,
    read_jsonl,
    transaction_summary,
    verify_jsonl,
)
from ebank_auth.audit.records import AuditReport, canonical_json, check_records, parse_record
from ebank_auth.audit.signing import (
    AuditSigner,
    AuditVerifier,
    HmacSm3Key,
    Sm2AuditSigner,
    Sm2AuditVerifier,
)

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditRecordRef",
    "AuditReport",
    "AuditSigner",
    "AuditVerifier",
    "HmacSm3Key",
    "Sm2AuditSigner",
    "Sm2AuditVerifier",
    "canonical_json",
    "check_jsonl",
    "check_records",
    "parse_record",
    "read_jsonl",
    "transaction_summary",
    "verify_jsonl",
]
