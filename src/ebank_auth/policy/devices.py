"""The customer's devices: binding, environment records and trusted devices
(AU-3, AU-4, AU-7).

* A device is *bound* after a verified ``bind_device`` decision (AU-4).
* At most ``max_trusted`` (3) devices are *trusted*; trusting a 4th evicts the
  trusted device whose last login is oldest.  Trust lapses ``trust_days`` (180)
  after it was granted.  Trusting needs an allowed ``trust_device`` decision that
  included a liveness (biometric) result or a USB Key signature, for a
  real-name verified customer (AU-7).
* Every login/operation can record the environment (client type, OS version,
  IP) so the last few are kept per device (AU-3); the full record of every
  operation goes to the audit log.

State for one customer is one JSON value updated with compare-and-set, so
concurrent updates never lose a device or exceed the trusted limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ebank_auth.audit.log import AuditLog
from ebank_auth.errors import AccessDenied, ConfigurationError, ConflictError, PolicyError
from ebank_auth.policy.context import DeviceStatus, Operation
from ebank_auth.policy.engine import Decision, Outcome
from ebank_auth.policy.factors import Factor
from ebank_auth.policy.model import MAX_TRUST_DAYS, MAX_TRUSTED_DEVICES, Policy
from ebank_auth.store.base import Store
from ebank_auth.store.keys import check_namespace, store_key

__all__ = ["DeviceRecord", "DeviceRegistry", "EnvironmentRecord", "TrustResult"]

_DAY = 86400.0
_HISTORY = 10
_RETRIES = 100


@dataclass(frozen=True)
class EnvironmentRecord:
    """Where an operation came from (AU-3)."""

    time: float
    client_type: str
    os_version: str
    ip: str


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    bound_at: float
    trusted_at: float | None  # when trust was granted (None: not trusted)
    last_login: float | None
    history: tuple[EnvironmentRecord, ...] = ()  # newest last, at most 10

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "bound_at": self.bound_at,
            "trusted_at": self.trusted_at,
            "last_login": self.last_login,
            "history": [[e.time, e.client_type, e.os_version, e.ip] for e in self.history],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeviceRecord:
        return cls(
            device_id=d["device_id"],
            bound_at=float(d["bound_at"]),
            trusted_at=None if d["trusted_at"] is None else float(d["trusted_at"]),
            last_login=None if d["last_login"] is None else float(d["last_login"]),
            history=tuple(EnvironmentRecord(float(t), c, o, i) for t, c, o, i in d["history"]),
        )


@dataclass(frozen=True)
class TrustResult:
    device: DeviceRecord
    evicted: DeviceRecord | None  # the trusted device that lost its trust, if any


class DeviceRegistry:
    """Devices per customer, kept in a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        *,
        max_trusted: int = MAX_TRUSTED_DEVICES,
        trust_days: int = MAX_TRUST_DAYS,
        verify_with: Iterable[Factor] = (Factor.BIOMETRIC, Factor.USBKEY_SIGNATURE),
        audit: AuditLog | None = None,
        namespace: str = "devices",
    ) -> None:
        if not 1 <= max_trusted <= MAX_TRUSTED_DEVICES:
            raise ConfigurationError(f"max_trusted must be 1-{MAX_TRUSTED_DEVICES} (AU-7)")
        if not 1 <= trust_days <= MAX_TRUST_DAYS:
            raise ConfigurationError(f"trust_days must be 1-{MAX_TRUST_DAYS} (AU-7)")
        self.verify_with = frozenset(verify_with)
        if not self.verify_with or not self.verify_with <= {
            Factor.BIOMETRIC,
            Factor.USBKEY_SIGNATURE,
        }:
            raise ConfigurationError(
                "trusted devices are verified by biometric (liveness) or usbkey_signature only"
            )
        self.store = store
        self.max_trusted = max_trusted
        self.trust_seconds = trust_days * _DAY
        self.audit = audit
        self.namespace = check_namespace(namespace)

    @classmethod
    def from_policy(
        cls, store: Store, policy: Policy, audit: AuditLog | None = None
    ) -> DeviceRegistry:
        d = policy.devices
        return cls(
            store,
            max_trusted=d.max_trusted,
            trust_days=d.trust_days,
            verify_with=d.verify_with,
            audit=audit,
        )

    # ------------------------------------------------------------------ storage
    def _key(self, user: str) -> str:
        if not isinstance(user, str) or not user:
            raise ConfigurationError("user id must be non-empty text")
        return store_key(self.namespace, user)

    @staticmethod
    def _decode(raw: bytes | None) -> dict[str, DeviceRecord]:
        if raw is None:
            return {}
        d = json.loads(raw.decode("utf-8"))
        return {k: DeviceRecord.from_json(v) for k, v in d["devices"].items()}

    @staticmethod
    def _encode(devices: dict[str, DeviceRecord]) -> bytes:
        body = {"v": 1, "devices": {k: v.to_json() for k, v in sorted(devices.items())}}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def _update(self, user: str, fn: Callable[[dict[str, DeviceRecord], float], Any]) -> Any:
        key = self._key(user)
        for _ in range(_RETRIES):
            raw = self.store.get(key)
            devices = self._decode(raw)
            result = fn(devices, self.store.clock())
            if self.store.compare_and_set(key, raw, self._encode(devices)):
                return result
        raise ConflictError(f"device registry of {user} is being changed concurrently: retry")

    # ------------------------------------------------------------------ queries
    def _is_trusted(self, rec: DeviceRecord, now: float) -> bool:
        return rec.trusted_at is not None and now < rec.trusted_at + self.trust_seconds

    def devices(self, user: str) -> list[DeviceRecord]:
        """All bound devices of ``user``."""
        return list(self._decode(self.store.get(self._key(user))).values())

    def trusted(self, user: str) -> list[DeviceRecord]:
        """Devices whose trust has not lapsed."""
        now = self.store.clock()
        return [d for d in self.devices(user) if self._is_trusted(d, now)]

    def status(self, user: str, device_id: str) -> DeviceStatus:
        """NEW (never bound), KNOWN (bound, not trusted or lapsed) or TRUSTED."""
        rec = self._decode(self.store.get(self._key(user))).get(device_id)
        if rec is None:
            return DeviceStatus.NEW
        return (
            DeviceStatus.TRUSTED
            if self._is_trusted(rec, self.store.clock())
            else DeviceStatus.KNOWN
        )

    # ------------------------------------------------------------------ changes
    @staticmethod
    def _check_decision(decision: Decision, op: Operation, user: str, device_id: str) -> None:
        ctx = decision.context
        if decision.outcome is not Outcome.ALLOW:
            raise AccessDenied(
                f"{op.value} needs an allowed policy decision (got {decision.outcome.name.lower()})"
            )
        if ctx.operation is not op or ctx.user != user or ctx.device_id != device_id:
            raise AccessDenied(
                f"the decision was made for another operation, customer or device; "
                f"decide {op.value} for this device first"
            )

    def _audit(self, event: str, user: str, device_id: str, details: dict[str, str]) -> None:
        if self.audit is not None:
            self.audit.record(event, user=user, device=device_id, outcome="ok", details=details)

    def bind(
        self,
        user: str,
        device_id: str,
        decision: Decision,
        *,
        client_type: str = "",
        os_version: str = "",
        ip: str = "",
    ) -> DeviceRecord:
        """Bind a device after an allowed ``bind_device`` decision (AU-4)."""
        if not device_id:
            raise PolicyError("device id must not be empty")
        self._check_decision(decision, Operation.BIND_DEVICE, user, device_id)

        def op(devices: dict[str, DeviceRecord], now: float) -> DeviceRecord:
            env = EnvironmentRecord(now, client_type, os_version, ip)
            rec = devices.get(device_id)
            if rec is None:
                rec = DeviceRecord(device_id, now, None, None, (env,))
            else:
                rec = replace(rec, history=(*rec.history, env)[-_HISTORY:])
            devices[device_id] = rec
            return rec

        rec: DeviceRecord = self._update(user, op)
        self._audit(
            "device_bound", user, device_id, {"client_type": client_type, "os_version": os_version}
        )
        return rec

    def trust(self, user: str, device_id: str, decision: Decision) -> TrustResult:
        """Make a bound device trusted after an allowed ``trust_device`` decision that
        included liveness or a USB Key signature; evicts the oldest-login trusted
        device if the limit is reached (AU-7)."""
        self._check_decision(decision, Operation.TRUST_DEVICE, user, device_id)
        ctx = decision.context
        if not ctx.real_name_verified:
            raise AccessDenied("trusted devices are for real-name verified customers only")
        if ctx.presented.isdisjoint(self.verify_with):
            names = " or ".join(sorted(f.value for f in self.verify_with))
            raise AccessDenied(f"verifying a trusted device needs {names}")

        def op(devices: dict[str, DeviceRecord], now: float) -> TrustResult:
            rec = devices.get(device_id)
            if rec is None:
                raise PolicyError("bind the device before trusting it")
            evicted = None
            others = [
                d for d in devices.values() if d.device_id != device_id and self._is_trusted(d, now)
            ]
            while len(others) >= self.max_trusted:
                oldest = min(
                    others,
                    key=lambda d: (
                        d.last_login if d.last_login is not None else float("-inf"),
                        d.trusted_at or 0.0,
                        d.device_id,
                    ),
                )
                devices[oldest.device_id] = replace(oldest, trusted_at=None)
                evicted = devices[oldest.device_id]
                others.remove(oldest)
            rec = replace(rec, trusted_at=now)
            devices[device_id] = rec
            return TrustResult(rec, evicted)

        result: TrustResult = self._update(user, op)
        details = {"evicted": result.evicted.device_id} if result.evicted else {}
        self._audit("device_trusted", user, device_id, details)
        return result

    def record_login(
        self,
        user: str,
        device_id: str,
        *,
        client_type: str = "",
        os_version: str = "",
        ip: str = "",
    ) -> DeviceRecord | None:
        """Note a successful login (last-login time and environment) on a bound
        device; returns None for a device that is not bound."""

        def op(devices: dict[str, DeviceRecord], now: float) -> DeviceRecord | None:
            rec = devices.get(device_id)
            if rec is None:
                return None
            env = EnvironmentRecord(now, client_type, os_version, ip)
            rec = replace(rec, last_login=now, history=(*rec.history, env)[-_HISTORY:])
            devices[device_id] = rec
            return rec

        out: DeviceRecord | None = self._update(user, op)
        return out

    def revoke_trust(self, user: str, device_id: str) -> None:
        """Remove trust from a device (it stays bound)."""

        def op(devices: dict[str, DeviceRecord], now: float) -> None:
            rec = devices.get(device_id)
            if rec is not None:
                devices[device_id] = replace(rec, trusted_at=None)

        self._update(user, op)
        self._audit("device_trust_revoked", user, device_id, {})

    def unbind(self, user: str, device_id: str) -> None:
        """Remove a device completely."""

        def op(devices: dict[str, DeviceRecord], now: float) -> None:
            devices.pop(device_id, None)

        self._update(user, op)
        self._audit("device_unbound", user, device_id, {})
