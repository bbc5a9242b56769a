"""What the policy engine decides about: one login or one operation.

An :class:`AuthContext` carries who (user, customer type, real-name status),
from where (channel, client type, IP, device id and status, OS version — the
AU-3 environment record), when (local time, Asia/Shanghai by default), what
(operation, amount, currency, payer/payee and whether both are the same
customer's own accounts) and which factors have already been verified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from ebank_auth.errors import PolicyError
from ebank_auth.localtime import DEFAULT_TIMEZONE
from ebank_auth.policy.factors import Factor
from ebank_auth.transaction import Transaction

__all__ = [
    "DEFAULT_TIMEZONE",
    "FUNDS_OPERATIONS",
    "AccessChannel",
    "AuthContext",
    "CustomerType",
    "DeviceStatus",
    "Operation",
]


class CustomerType(str, Enum):
    PERSONAL = "personal"
    CORPORATE = "corporate"


class AccessChannel(str, Enum):
    WEB = "web"  # internet banking in a browser or desktop client
    MOBILE = "mobile"  # mobile banking app
    TELEPHONE = "telephone"  # telephone banking
    API = "api"  # open-banking / host-to-host interface


class DeviceStatus(str, Enum):
    """How the device registry knows the device the request comes from."""

    NEW = "new"  # never bound to this customer
    KNOWN = "known"  # bound, but not (or no longer) a trusted device
    TRUSTED = "trusted"  # one of the customer's trusted devices, trust not lapsed


class Operation(str, Enum):
    LOGIN = "login"
    QUERY = "query"  # balance / history look-up
    TRANSFER = "transfer"
    PAYMENT = "payment"
    BILL_PAYMENT = "bill_payment"
    BATCH_TRANSFER = "batch_transfer"
    SALARY = "salary"
    WITHDRAWAL = "withdrawal"
    FX_EXCHANGE = "fx_exchange"
    INVESTMENT = "investment"
    BIND_DEVICE = "bind_device"
    TRUST_DEVICE = "trust_device"
    CHANGE_PROFILE = "change_profile"  # phone number, limits, passwords


#: operations that move funds: they carry an amount and use the amount tiers
FUNDS_OPERATIONS: frozenset[Operation] = frozenset(
    {
        Operation.TRANSFER,
        Operation.PAYMENT,
        Operation.BILL_PAYMENT,
        Operation.BATCH_TRANSFER,
        Operation.SALARY,
        Operation.WITHDRAWAL,
        Operation.FX_EXCHANGE,
        Operation.INVESTMENT,
    }
)


def _server_now() -> datetime:
    """Now by the server clock, in the default (shipped policy's) time zone."""
    return datetime.now(DEFAULT_TIMEZONE)


def _enum(kind: type[Any], value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise PolicyError(f"context {what} {value!r} is not one of: {known}") from None


@dataclass(frozen=True)
class AuthContext:
    """Everything a decision looks at.  Validated on construction.

    ``local_time`` defaults to now (the server clock) in :data:`DEFAULT_TIMEZONE`; the
    engine converts it to its policy's time zone, so night rules see the right local
    hour whatever zone a given time carries.  Give it for a request that happened
    earlier (e.g. a queued transaction); a naive ``datetime`` is refused."""

    user: str  # customer id
    operation: Operation
    local_time: datetime = field(default_factory=lambda: _server_now())  # aware
    customer_type: CustomerType = CustomerType.PERSONAL
    channel: AccessChannel = AccessChannel.WEB
    client_type: str = "browser"  # e.g. browser, android, ios, desktop
    ip: str = ""
    device_id: str = ""
    os_version: str = ""
    device_status: DeviceStatus = DeviceStatus.NEW
    real_name_verified: bool = True  # the customer passed real-name verification
    amount: Decimal | None = None  # required for funds operations
    currency: str = "CNY"
    payer: str | None = None
    payee: str | None = None
    same_customer: bool = False  # payer and payee both belong to this customer
    presented: frozenset[Factor] = field(default_factory=frozenset)  # verified factors
    risk_score: float = 0.0  # 0-100, from the app's own risk engine (hooks may raise it)
    tx_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not self.user or len(self.user) > 128:
            raise PolicyError("context user must be a non-empty id of at most 128 characters")
        object.__setattr__(self, "operation", _enum(Operation, self.operation, "operation"))
        object.__setattr__(
            self, "customer_type", _enum(CustomerType, self.customer_type, "customer_type")
        )
        object.__setattr__(self, "channel", _enum(AccessChannel, self.channel, "channel"))
        object.__setattr__(
            self, "device_status", _enum(DeviceStatus, self.device_status, "device_status")
        )
        if not isinstance(self.local_time, datetime) or self.local_time.utcoffset() is None:
            raise PolicyError(
                "context local_time must carry a time zone: give e.g. "
                "datetime.now(engine.policy.timezone), or leave it out for now "
                "(a naive time could be any zone)"
            )
        presented = frozenset(_enum(Factor, f, "factor") for f in self.presented)
        object.__setattr__(self, "presented", presented)
        if self.amount is not None:
            if isinstance(self.amount, (bool, float)) or not isinstance(
                self.amount, (Decimal, int)
            ):
                raise PolicyError("context amount must be a Decimal (floats are refused)")
            amount = Decimal(self.amount)
            if not amount.is_finite() or amount <= 0:
                raise PolicyError("context amount must be a positive finite number")
            object.__setattr__(self, "amount", amount)
        if self.operation in FUNDS_OPERATIONS and self.amount is None:
            raise PolicyError(
                f"operation {self.operation.value} moves funds: the context needs an amount"
            )
        if isinstance(self.risk_score, bool) or not isinstance(self.risk_score, (int, float)):
            raise PolicyError("context risk_score must be a number from 0 to 100")
        if not 0 <= self.risk_score <= 100:
            raise PolicyError("context risk_score must be from 0 to 100")

    def with_presented(self, factors: Iterable[Factor]) -> AuthContext:
        """A copy whose presented factors are ``factors``."""
        return _replace(self, presented=frozenset(factors))

    def replace(self, **changes: Any) -> AuthContext:
        """A validated copy with some fields changed."""
        return _replace(self, **changes)

    @classmethod
    def for_transaction(
        cls,
        tx: Transaction,
        user: str,
        *,
        operation: Operation | None = None,
        same_customer: bool = False,
        **kw: Any,
    ) -> AuthContext:
        """Context for submitting ``tx``: amount, currency, accounts, id and time
        come from the transaction; operation defaults to its type."""
        op = operation or _enum(Operation, tx.tx_type, "operation (from tx_type)")
        kw.setdefault("local_time", tx.timestamp)
        return cls(
            user=user,
            operation=op,
            amount=tx.amount,
            currency=tx.currency,
            payer=tx.payer_account,
            payee=tx.payee_account,
            same_customer=same_customer,
            tx_id=tx.tx_id,
            **kw,
        )

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, default_tz: ZoneInfo = DEFAULT_TIMEZONE
    ) -> AuthContext:
        """Build from JSON (as used by ``ebank-auth policy explain --context``).

        ``local_time`` is ISO 8601 (no offset = ``default_tz``; omitted = now),
        ``amount`` a decimal string or integer, ``presented`` a list of factor names.
        """
        if not isinstance(d, Mapping):
            raise PolicyError("context must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise PolicyError(f"unknown context key(s): {', '.join(unknown)}")
        values = dict(d)
        if "user" not in values or "operation" not in values:
            raise PolicyError("context needs at least 'user' and 'operation'")
        lt = values.get("local_time")
        if lt is None:
            values["local_time"] = _server_now().astimezone(default_tz)
        else:
            if not isinstance(lt, str):
                raise PolicyError("context local_time must be an ISO 8601 string")
            try:
                parsed = datetime.fromisoformat(lt)
            except ValueError:
                raise PolicyError(f"context local_time {lt!r} is not ISO 8601") from None
            values["local_time"] = parsed if parsed.tzinfo else parsed.replace(tzinfo=default_tz)
        amt = values.get("amount")
        if amt is not None:
            if isinstance(amt, bool) or not isinstance(amt, (str, int)):
                raise PolicyError('context amount must be a decimal string such as "5000.00"')
            try:
                values["amount"] = Decimal(amt)
            except InvalidOperation:
                raise PolicyError(f"context amount {amt!r} is not a number") from None
        pres = values.get("presented", [])
        if not isinstance(pres, list):
            raise PolicyError("context presented must be a list of factor names")
        values["presented"] = frozenset(pres)
        for key in ("real_name_verified", "same_customer"):
            if key in values and not isinstance(values[key], bool):
                raise PolicyError(f"context {key} must be true or false")
        for key in ("client_type", "ip", "device_id", "os_version", "currency"):
            if key in values and not isinstance(values[key], str):
                raise PolicyError(f"context {key} must be a string")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the inverse of :meth:`from_dict`)."""
        return {
            "user": self.user,
            "operation": self.operation.value,
            "local_time": self.local_time.isoformat(),
            "customer_type": self.customer_type.value,
            "channel": self.channel.value,
            "client_type": self.client_type,
            "ip": self.ip,
            "device_id": self.device_id,
            "os_version": self.os_version,
            "device_status": self.device_status.value,
            "real_name_verified": self.real_name_verified,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "payer": self.payer,
            "payee": self.payee,
            "same_customer": self.same_customer,
            "presented": sorted(f.value for f in self.presented),
            "risk_score": self.risk_score,
            "tx_id": self.tx_id,
        }


def _replace(ctx: AuthContext, **changes: Any) -> AuthContext:
    values = {name: getattr(ctx, name) for name in ctx.__dataclass_fields__}
    values.update(changes)
    return AuthContext(**values)
