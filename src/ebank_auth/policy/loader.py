"""Load and validate a policy file (TOML).

A policy can only tighten the built-in baseline (:mod:`ebank_auth.policy.baseline`),
which the engine applies on top of whatever the file says.

Every problem raises :class:`ebank_auth.errors.PolicyFileError` whose message
starts with ``<file>:<line>: <key path>:`` — the file, the line of the offending
entry and the key inside it — and says what is allowed.  The schema is described
in ``docs/policy.md``; ``default_policy.toml`` next to this module is a complete
example.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ebank_auth.errors import PolicyFileError
from ebank_auth.policy.baseline import BASELINE_CURRENCY, RESERVED_PREFIX
from ebank_auth.policy.context import (
    FUNDS_OPERATIONS,
    AccessChannel,
    CustomerType,
    DeviceStatus,
    Operation,
)
from ebank_auth.policy.factors import Factor, Requirement
from ebank_auth.policy.model import (
    MAX_LOCKOUT_FAILURES,
    MAX_TRUST_DAYS,
    MAX_TRUSTED_DEVICES,
    OBLIGATIONS,
    AmountTier,
    BlacklistSettings,
    Conditions,
    DeviceSettings,
    Effect,
    LockoutSettings,
    Policy,
    RiskLevel,
    Rule,
    TierTable,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SCHEMA_VERSION", "default_policy", "default_policy_text", "load_policy", "loads_policy"]

SCHEMA_VERSION = 1
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}", re.ASCII)
_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
_REF_RE = re.compile(r"[A-Z]{2,3}-[0-9]{1,2}", re.ASCII)
_NOTIFY_CHANNELS = ("sms", "voice")


class _Locator:
    """Maps a (table, index, key) position to a line of the TOML text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str]] = []
        for no, raw in enumerate(self.lines, 1):
            s = raw.strip()
            m = re.match(r"\[\[\s*([^\]]+?)\s*\]\]|\[\s*([^\]]+?)\s*\]", s)
            if m and not s.startswith("#"):
                name = (m.group(1) or m.group(2)).replace(" ", "")
                self.headers.append((no, name))

    def line(self, table: str, index: int | None = None, key: str | None = None) -> int | None:
        if table:
            starts = [no for no, name in self.headers if name == table]
            if not starts:
                return None
            start = starts[index if index is not None and index < len(starts) else 0]
        else:
            start = 0
        end = next((no for no, _ in self.headers if no > start), len(self.lines) + 1)
        if key is not None:
            pat = re.compile(rf"\s*{re.escape(key)}\s*=")
            for no in range(start + 1, end):
                if pat.match(self.lines[no - 1]):
                    return no
        return start or None


@dataclass(frozen=True)
class _Where:
    table: str  # TOML table name, e.g. "rules" or "operations.login"
    index: int | None  # which [[table]] for arrays of tables
    path: str  # display path, e.g. "rules[2]"
    prefix: str = ""  # key prefix inside the table, e.g. "when."


class _Loader:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.locator = _Locator(text)

    # ------------------------------------------------------------------ errors
    def fail(self, where: _Where, key: str | None, msg: str) -> NoReturn:
        key = where.prefix + key if key else None
        line = self.locator.line(where.table, where.index, key.split(".")[0] if key else None)
        path = where.path + (("." if where.path else "") + key if key else "")
        loc = f"{self.source}:{line}" if line else self.source
        raise PolicyFileError(f"{loc}: {path or '(top level)'}: {msg}")

    def check_keys(self, where: _Where, table: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for key in table:
            if key not in allowed:
                self.fail(
                    where, key, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
                )

    # ------------------------------------------------------------------ typed getters
    def table(self, where: _Where, parent: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.fail(where, key, f"must be a table, not {_tname(value)}")
        return value

    def str_(
        self, where: _Where, t: Mapping[str, Any], key: str, default: str | None = None
    ) -> str:
        value = t.get(key, default)
        if value is None:
            self.fail(where, key, "is required")
        if not isinstance(value, str):
            self.fail(where, key, f"must be a string, not {_tname(value)}")
        return value

    def int_(self, where: _Where, t: Mapping[str, Any], key: str, default: int) -> int:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, key, f"must be an integer, not {_tname(value)}")
        return value

    def bool_(
        self, where: _Where, t: Mapping[str, Any], key: str, default: bool | None
    ) -> bool | None:
        value = t.get(key, default)
        if value is not None and not isinstance(value, bool):
            self.fail(where, key, f"must be true or false, not {_tname(value)}")
        return value

    def str_list(self, where: _Where, t: Mapping[str, Any], key: str) -> list[str] | None:
        value = t.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(where, key, "must be a list of strings")
        return list(value)

    def decimal(self, where: _Where, t: Mapping[str, Any], key: str) -> Decimal | None:
        value = t.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(
                where,
                key,
                f'must be an amount as a string ("5000.00") or integer, not {_tname(value)}',
            )
        try:
            amount = Decimal(value)
        except InvalidOperation:
            self.fail(where, key, f"{value!r} is not a number")
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            self.fail(
                where, key, f"{value!r} must be a non-negative amount with at most 2 decimals"
            )
        return amount

    def enum_set(
        self, where: _Where, t: Mapping[str, Any], key: str, kind: type[Any]
    ) -> frozenset[Any] | None:
        names = self.str_list(where, t, key)
        if names is None:
            return None
        out = set()
        for name in names:
            try:
                out.add(kind(name))
            except ValueError:
                known = ", ".join(m.value for m in kind)
                self.fail(where, key, f"unknown value {name!r} (known: {known})")
        if not out:
            self.fail(where, key, "must not be empty")
        return frozenset(out)

    def refs(self, where: _Where, t: Mapping[str, Any]) -> tuple[str, ...]:
        refs = self.str_list(where, t, "refs") or []
        for r in refs:
            if not _REF_RE.fullmatch(r):
                self.fail(where, "refs", f"{r!r} is not a requirement ID such as 'AU-5'")
        return tuple(refs)

    def requirement(self, where: _Where, t: Mapping[str, Any]) -> Requirement:
        raw = t.get("require", [])
        if not isinstance(raw, list):
            self.fail(where, "require", 'must be a list of factor lists, e.g. [["password"]]')
        clauses = []
        for i, clause in enumerate(raw):
            if isinstance(clause, str):
                clause = [clause]
            if not isinstance(clause, list) or not clause:
                self.fail(where, "require", f"entry {i} must be a non-empty list of factor names")
            factors = set()
            for name in clause:
                if not isinstance(name, str):
                    self.fail(where, "require", f"entry {i}: factor names must be strings")
                try:
                    factors.add(Factor(name))
                except ValueError:
                    known = ", ".join(f.value for f in Factor)
                    self.fail(where, "require", f"unknown factor {name!r} (known: {known})")
            clauses.append(frozenset(factors))
        min_factors = self.int_(where, t, "min_factors", 0)
        min_classes = self.int_(where, t, "min_classes", 0)
        if not 0 <= min_factors <= len(Factor):
            self.fail(where, "min_factors", f"must be from 0 to {len(Factor)}")
        if not 0 <= min_classes <= 3:
            self.fail(where, "min_classes", "must be from 0 to 3")
        req = Requirement(frozenset(clauses), min_factors, min_classes)
        if not req.is_satisfiable():
            self.fail(where, "require", "can never be met (min_factors/min_classes too high)")
        return req

    def rule_id(self, where: _Where, t: Mapping[str, Any], seen: set[str]) -> str:
        rid = self.str_(where, t, "id")
        if not _ID_RE.fullmatch(rid):
            self.fail(where, "id", f"{rid!r} must be 1-64 of a-z 0-9 _ . - (lower case)")
        if rid.startswith(RESERVED_PREFIX):
            self.fail(
                where,
                "id",
                f"{rid!r}: ids starting {RESERVED_PREFIX!r} are reserved for the "
                "built-in baseline: choose another id",
            )
        if rid in seen:
            self.fail(where, "id", f"duplicate id {rid!r}")
        seen.add(rid)
        return rid

    # ------------------------------------------------------------------ sections
    def load(self, doc: dict[str, Any]) -> Policy:
        top = _Where("", None, "")
        self.check_keys(
            top,
            doc,
            ["policy", "lockout", "devices", "blacklist", "operations", "amount_tiers", "rules"],
        )
        w = _Where("policy", None, "policy")
        head = self.table(top, doc, "policy")
        self.check_keys(w, head, ["name", "schema", "timezone", "night"])
        if "policy" not in doc:
            self.fail(top, "policy", "the [policy] table is required")
        name = self.str_(w, head, "name")
        schema = self.int_(w, head, "schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            self.fail(w, "schema", f"schema {schema} is not supported (use {SCHEMA_VERSION})")
        tzname = self.str_(w, head, "timezone", "Asia/Shanghai")
        try:
            tz = ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(w, "timezone", f"unknown time zone {tzname!r} (e.g. Asia/Shanghai)")
        night = self.str_list(w, head, "night") or ["00:00", "06:00"]
        if len(night) != 2:
            self.fail(w, "night", 'must be ["HH:MM", "HH:MM"] (start, end)')
        times = []
        for value in night:
            m = _TIME_RE.fullmatch(value)
            if not m:
                self.fail(w, "night", f"{value!r} is not a time HH:MM")
            times.append(time(int(m.group(1)), int(m.group(2))))
        if times[0] == times[1]:
            self.fail(w, "night", "start and end must differ")

        seen: set[str] = set()
        operations = self.operations(top, doc, seen)
        tiers = self.tiers(top, doc, seen)
        rules = self.rules(doc, seen)
        return Policy(
            name=name,
            timezone=tz,
            night_start=times[0],
            night_end=times[1],
            operations=operations,
            tiers=tiers,
            rules=rules,
            lockout=self.lockout(top, doc),
            devices=self.devices(top, doc),
            blacklist=self.blacklist(top, doc),
            source=self.source,
        )

    def lockout(self, top: _Where, doc: Mapping[str, Any]) -> LockoutSettings:
        w = _Where("lockout", None, "lockout")
        t = self.table(top, doc, "lockout")
        self.check_keys(w, t, ["max_failures", "notify"])
        limit = self.int_(w, t, "max_failures", MAX_LOCKOUT_FAILURES)
        if not 1 <= limit <= MAX_LOCKOUT_FAILURES:
            self.fail(
                w,
                "max_failures",
                f"{limit} is outside 1-{MAX_LOCKOUT_FAILURES}: the standard (AU-6) allows "
                f"at most {MAX_LOCKOUT_FAILURES} consecutive failures",
            )
        notify = self.str_list(w, t, "notify") or list(_NOTIFY_CHANNELS)
        for ch in notify:
            if ch not in _NOTIFY_CHANNELS:
                self.fail(w, "notify", f"unknown channel {ch!r} (use sms, voice)")
        return LockoutSettings(limit, tuple(notify))

    def devices(self, top: _Where, doc: Mapping[str, Any]) -> DeviceSettings:
        w = _Where("devices", None, "devices")
        t = self.table(top, doc, "devices")
        self.check_keys(w, t, ["max_trusted", "trust_days", "verify_with"])
        max_trusted = self.int_(w, t, "max_trusted", MAX_TRUSTED_DEVICES)
        if not 1 <= max_trusted <= MAX_TRUSTED_DEVICES:
            self.fail(w, "max_trusted", f"must be from 1 to {MAX_TRUSTED_DEVICES} (AU-7)")
        days = self.int_(w, t, "trust_days", MAX_TRUST_DAYS)
        if not 1 <= days <= MAX_TRUST_DAYS:
            self.fail(w, "trust_days", f"must be from 1 to {MAX_TRUST_DAYS} (AU-7)")
        verify = self.enum_set(w, t, "verify_with", Factor) or frozenset(
            {Factor.BIOMETRIC, Factor.USBKEY_SIGNATURE}
        )
        if not verify <= {Factor.BIOMETRIC, Factor.USBKEY_SIGNATURE}:
            self.fail(
                w, "verify_with", "only biometric and usbkey_signature may verify a trusted device"
            )
        return DeviceSettings(max_trusted, days, verify)

    def blacklist(self, top: _Where, doc: Mapping[str, Any]) -> BlacklistSettings:
        w = _Where("blacklist", None, "blacklist")
        t = self.table(top, doc, "blacklist")
        self.check_keys(w, t, ["users", "devices", "ips", "payees"])
        return BlacklistSettings(
            frozenset(self.str_list(w, t, "users") or ()),
            frozenset(self.str_list(w, t, "devices") or ()),
            frozenset(self.str_list(w, t, "ips") or ()),
            frozenset(self.str_list(w, t, "payees") or ()),
        )

    def operations(
        self, top: _Where, doc: Mapping[str, Any], seen: set[str]
    ) -> dict[Operation, Rule]:
        ops = self.table(top, doc, "operations")
        if not ops:
            self.fail(top, "operations", "at least one [operations.<name>] table is required")
        out: dict[Operation, Rule] = {}
        for key, t in ops.items():
            w = _Where(f"operations.{key}", None, f"operations.{key}")
            try:
                op = Operation(key)
            except ValueError:
                known = ", ".join(o.value for o in Operation)
                self.fail(w, None, f"unknown operation {key!r} (known: {known})")
            if not isinstance(t, dict):
                self.fail(w, None, f"must be a table, not {_tname(t)}")
            self.check_keys(
                w,
                t,
                ["require", "min_factors", "min_classes", "description", "refs", "obligations"],
            )
            rid = f"operation.{op.value}"
            seen.add(rid)
            out[op] = Rule(
                id=rid,
                when=Conditions(operations=frozenset({op})),
                requirement=self.requirement(w, t),
                obligations=self.obligations(w, t),
                description=self.str_(w, t, "description", ""),
                refs=self.refs(w, t),
                line=self.locator.line(w.table),
            )
        return out

    def obligations(self, w: _Where, t: Mapping[str, Any]) -> frozenset[str]:
        names = self.str_list(w, t, "obligations") or []
        for n in names:
            if n not in OBLIGATIONS:
                self.fail(
                    w,
                    "obligations",
                    f"unknown obligation {n!r} (known: {', '.join(sorted(OBLIGATIONS))})",
                )
        return frozenset(names)

    def tiers(self, top: _Where, doc: Mapping[str, Any], seen: set[str]) -> TierTable | None:
        if "amount_tiers" not in doc:
            return None
        w = _Where("amount_tiers", None, "amount_tiers")
        t = self.table(top, doc, "amount_tiers")
        self.check_keys(w, t, ["operations", "currency", "exempt_same_customer", "tier"])
        ops = self.enum_set(w, t, "operations", Operation) or FUNDS_OPERATIONS
        if not ops <= FUNDS_OPERATIONS:
            bad = ", ".join(sorted(o.value for o in ops - FUNDS_OPERATIONS))
            self.fail(w, "operations", f"amount tiers apply to funds operations only, not {bad}")
        currency = self.str_(w, t, "currency", BASELINE_CURRENCY)
        if not re.fullmatch(r"[A-Z]{3}", currency):
            self.fail(w, "currency", f"{currency!r} is not an ISO 4217 code such as CNY")
        if currency != BASELINE_CURRENCY:
            self.fail(
                w,
                "currency",
                f"tiers must be in {BASELINE_CURRENCY} (the built-in baseline's currency); "
                "amounts in other currencies are converted with PolicyEngine(converter=...)",
            )
        exempt = bool(self.bool_(w, t, "exempt_same_customer", True))
        raw = t.get("tier")
        if not isinstance(raw, list) or not raw:
            self.fail(w, "tier", "at least one [[amount_tiers.tier]] is required")
        tiers: list[AmountTier] = []
        for i, tt in enumerate(raw):
            tw = _Where("amount_tiers.tier", i, f"amount_tiers.tier[{i}]")
            if not isinstance(tt, dict):
                self.fail(tw, None, "must be a table")
            self.check_keys(
                tw,
                tt,
                [
                    "id",
                    "from",
                    "to",
                    "require",
                    "min_factors",
                    "min_classes",
                    "description",
                    "refs",
                ],
            )
            lower = self.decimal(tw, tt, "from")
            if lower is None:
                self.fail(tw, "from", "is required")
            upper = self.decimal(tw, tt, "to")
            if upper is not None and upper <= lower:
                self.fail(tw, "to", f"must be above 'from' ({lower})")
            tiers.append(
                AmountTier(
                    id=self.rule_id(tw, tt, seen),
                    lower=lower,
                    upper=upper,
                    requirement=self.requirement(tw, tt),
                    description=self.str_(tw, tt, "description", ""),
                    refs=self.refs(tw, tt),
                    line=self.locator.line(tw.table, i),
                )
            )
        order = sorted(range(len(tiers)), key=lambda i: tiers[i].lower)
        for pos, i in enumerate(order):
            tier = tiers[i]
            tw = _Where("amount_tiers.tier", i, f"amount_tiers.tier[{i}]")
            if pos == 0 and tier.lower != 0:
                self.fail(tw, "from", "the lowest tier must start at 0 so every amount is covered")
            if pos + 1 < len(order):
                nxt = tiers[order[pos + 1]]
                if tier.upper is None or tier.upper > nxt.lower:
                    self.fail(
                        tw,
                        "to",
                        f"tiers {tier.id!r} and {nxt.id!r} overlap "
                        f"(from {nxt.lower} to {tier.upper or 'no limit'})",
                    )
                if tier.upper < nxt.lower:
                    self.fail(
                        tw,
                        "to",
                        f"gap between tiers {tier.id!r} and {nxt.id!r}: "
                        f"amounts from {tier.upper} to {nxt.lower} are not covered",
                    )
                if not nxt.requirement.implies(tier.requirement):
                    nw = _Where(
                        "amount_tiers.tier", order[pos + 1], f"amount_tiers.tier[{order[pos + 1]}]"
                    )
                    self.fail(
                        nw,
                        "require",
                        f"tier {nxt.id!r} is weaker than the lower tier {tier.id!r}: a higher "
                        "amount must never need less (include every clause of the lower tier "
                        "or a narrower one)",
                    )
            elif tier.upper is not None:
                self.fail(tw, "to", "the highest tier must have no 'to' so every amount is covered")
        return TierTable(ops, currency, exempt, tuple(tiers[i] for i in order))

    def rules(self, doc: Mapping[str, Any], seen: set[str]) -> tuple[Rule, ...]:
        raw = doc.get("rules", [])
        if not isinstance(raw, list):
            self.fail(_Where("", None, ""), "rules", "must be an array of tables ([[rules]])")
        out = []
        for i, t in enumerate(raw):
            w = _Where("rules", i, f"rules[{i}]")
            if not isinstance(t, dict):
                self.fail(w, None, "must be a table")
            self.check_keys(
                w,
                t,
                [
                    "id",
                    "description",
                    "refs",
                    "when",
                    "effect",
                    "require",
                    "min_factors",
                    "min_classes",
                    "obligations",
                    "risk",
                    "message",
                ],
            )
            rid = self.rule_id(w, t, seen)
            effect_name = self.str_(w, t, "effect", "require")
            try:
                effect = Effect(effect_name)
            except ValueError:
                self.fail(w, "effect", f"{effect_name!r} must be 'require' or 'deny'")
            risk_name = self.str_(w, t, "risk", "low")
            try:
                risk = RiskLevel[risk_name.upper()]
            except KeyError:
                self.fail(w, "risk", f"{risk_name!r} must be low, medium or high")
            requirement = self.requirement(w, t)
            if effect is Effect.DENY and (
                "require" in t or "min_factors" in t or "min_classes" in t
            ):
                self.fail(w, "require", "a deny rule cannot also require factors")
            if effect is Effect.REQUIRE and not (
                requirement.clauses
                or requirement.min_factors
                or requirement.min_classes
                or "obligations" in t
            ):
                self.fail(
                    w, "require", "a require rule needs 'require', a minimum or 'obligations'"
                )
            out.append(
                Rule(
                    id=rid,
                    when=self.conditions(w, t),
                    effect=effect,
                    requirement=requirement,
                    obligations=self.obligations(w, t),
                    risk=risk,
                    message=self.str_(w, t, "message", ""),
                    description=self.str_(w, t, "description", ""),
                    refs=self.refs(w, t),
                    line=self.locator.line("rules", i),
                )
            )
        return tuple(out)

    def conditions(self, w: _Where, rule: Mapping[str, Any]) -> Conditions:
        t = rule.get("when", {})
        if not isinstance(t, dict):
            self.fail(w, "when", 'must be a table, e.g. when = { operation = ["login"] }')
        cw = _Where(w.table, w.index, w.path, "when.")

        def key_fail(key: str, msg: str) -> NoReturn:
            self.fail(cw, key, msg)

        allowed = [
            "operation",
            "customer_type",
            "channel",
            "client_type",
            "device_status",
            "night",
            "amount_at_least",
            "risk_at_least",
            "same_customer",
            "blacklisted",
            "real_name_verified",
        ]
        for key in t:
            if key not in allowed:
                key_fail(key, f"unknown condition {key!r} (allowed: {', '.join(allowed)})")
        night = self.bool_(cw, t, "night", False)
        if night is False and "night" in t:
            key_fail(
                "night",
                "only 'night = true' is allowed: a day-only rule would make "
                "night requests weaker than day ones",
            )
        blacklisted = self.bool_(cw, t, "blacklisted", False)
        if blacklisted is False and "blacklisted" in t:
            key_fail("blacklisted", "only 'blacklisted = true' is allowed")
        risk = t.get("risk_at_least")
        if risk is not None and (
            isinstance(risk, bool) or not isinstance(risk, (int, float)) or not 0 <= risk <= 100
        ):
            key_fail("risk_at_least", "must be a number from 0 to 100")
        return Conditions(
            operations=self.enum_set(cw, t, "operation", Operation),
            customer_types=self.enum_set(cw, t, "customer_type", CustomerType),
            channels=self.enum_set(cw, t, "channel", AccessChannel),
            client_types=frozenset(self.str_list(cw, t, "client_type") or ()) or None,
            device_statuses=self.enum_set(cw, t, "device_status", DeviceStatus),
            night=bool(night),
            amount_at_least=self.decimal(cw, t, "amount_at_least"),
            risk_at_least=None if risk is None else float(risk),
            same_customer=self.bool_(cw, t, "same_customer", None),
            blacklisted=bool(blacklisted),
            real_name_verified=self.bool_(cw, t, "real_name_verified", None),
        )


def _tname(value: object) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def loads_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy TOML text; ``source`` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        where = f"{source}:{m.group(1)}" if m else source
        raise PolicyFileError(f"{where}: TOML syntax error: {exc}") from None
    return _Loader(text, source).load(doc)


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{p}: cannot read the policy file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyFileError(f"{p}: the policy file is not UTF-8 text") from None
    return loads_policy(text, str(p))


def default_policy_text() -> str:
    """The text of the shipped default policy (``default_policy.toml``)."""
    return resources.files("ebank_auth.policy").joinpath("default_policy.toml").read_text("utf-8")


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    """The shipped default policy, which meets AU-1…AU-12 and UK-11 (docs/policy.md)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = loads_policy(default_policy_text(), "default_policy.toml")
    return _DEFAULT
