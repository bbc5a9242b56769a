"""Tamper-evident audit log (AU-10): hash-chained records on a store's
append-only log, signed checkpoints and a signed head (HMAC-SM3 or SM2),
verification naming the first bad record, JSONL export."""

from ebank_auth.audit.log import (
    AuditEvent,
    AuditLog,
    AuditRecordRef,
    read_jsonl,
    transaction_summary,
    verify_jsonl,
)
from ebank_auth.audit.records import VerifyReport, canonical_json, parse_record, verify_records
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
    "AuditSigner",
    "AuditVerifier",
    "HmacSm3Key",
    "Sm2AuditSigner",
    "Sm2AuditVerifier",
    "VerifyReport",
    "canonical_json",
    "parse_record",
    "read_jsonl",
    "transaction_summary",
    "verify_jsonl",
    "verify_records",
]
