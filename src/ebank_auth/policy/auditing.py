"""Write policy decisions to the audit log (AU-3, AU-10).

:func:`record_decision` stores who, from where (client type, IP, device id, OS
version), what (operation, masked transaction summary), the outcome and every
rule that fired, so each decision can be reconstructed and reviewed.
"""

from __future__ import annotations

from ebank_auth.audit.log import AuditLog, AuditRecordRef
from ebank_auth.policy.engine import Decision
from ebank_auth.transaction import Transaction

__all__ = ["record_decision"]


def record_decision(
    audit: AuditLog,
    decision: Decision,
    *,
    event: str | None = None,
    tx: Transaction | None = None,
) -> AuditRecordRef:
    """Append ``decision`` (and the masked ``tx``) to ``audit``."""
    ctx = decision.context
    details = {
        "channel": ctx.channel.value,
        "customer_type": ctx.customer_type.value,
        "device_status": ctx.device_status.value,
        "presented": ",".join(sorted(f.value for f in ctx.presented)),
        "required": decision.required.describe(),
        "risk_level": decision.risk_level.name.lower(),
        "risk_score": f"{decision.risk_score:g}",
    }
    if decision.obligations:
        details["obligations"] = ",".join(sorted(decision.obligations))
    if decision.reasons:
        details["reasons"] = "; ".join(decision.reasons)
    if ctx.amount is not None and tx is None:
        details["amount"] = f"{ctx.amount} {ctx.currency}"
    return audit.record(
        event or ctx.operation.value,
        user=ctx.user,
        ip=ctx.ip,
        device=ctx.device_id,
        client_type=ctx.client_type,
        os_version=ctx.os_version,
        outcome=decision.outcome.name.lower(),
        rules=decision.fired,
        tx=tx,
        details=details,
    )
