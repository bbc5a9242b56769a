"""Name constraints (RFC 5280 4.2.1.10 and 6.1.3 (b), (c)).

Implemented name forms: directoryName (RDN prefix, RFC 4518-style normalised),
dNSName (the name or any subdomain of it; a base starting with "." only
subdomains), rfc822Name (a mailbox, every mailbox at a host, or with a leading "."
every mailbox in a subdomain; emailAddress attributes of the subject DN are checked
too), iPAddress (address and mask, IPv4 and IPv6).  Permitted subtrees of several
CAs intersect (a name must satisfy each CA that constrains its form); excluded
subtrees of any CA above refuse.  A constraint on another form (URI, otherName, ...)
refuses a certificate that carries a name of that form (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from asn1crypto import core as a_core

from ebank_auth.crypto import oids

from .certificate import Certificate
from .names import attribute_values, rdn_keys

__all__ = ["Constraints", "check_names", "parse_constraints"]

SUPPORTED: Final = frozenset({"directory_name", "dns_name", "rfc822_name", "ip_address"})
_EMAIL_ATTRIBUTE: Final = "1.2.840.113549.1.9.1"

Base = str | tuple[str, ...] | tuple[bytes, bytes]


@dataclass(frozen=True)
class Constraints:
    """One CA's constraints: form -> bases, for permitted and excluded subtrees."""

    index: int
    permitted: dict[str, list[Base]] = field(default_factory=dict)
    excluded: dict[str, list[Base]] = field(default_factory=dict)


def _base(kind: str, gn: a_core.Asn1Value) -> Base:
    chosen = gn.chosen
    if kind == "directory_name":
        return rdn_keys(chosen.chosen.dump())  # the RDNSequence, without the [4] tag
    raw = bytes(chosen.contents or b"")
    if kind == "ip_address":
        if len(raw) not in (8, 32):
            raise ValueError(f"iPAddress constraint of {len(raw)} octets (8 or 32 expected)")
        half = len(raw) // 2
        return raw[:half], raw[half:]
    if kind == "dns_name":
        return raw.decode("ascii").lower()
    if kind == "rfc822_name":
        return raw.decode("ascii")
    return raw.hex()


def parse_constraints(cert: Certificate, index: int) -> Constraints | None:
    """The nameConstraints of ``cert`` (at ``index`` in the path), or None.

    Raises ValueError when the extension is malformed.
    """
    value = cert.extension_value(oids.EXT_NAME_CONSTRAINTS)
    if value is None:
        return None
    result = Constraints(index)
    for key, target in (
        ("permitted_subtrees", result.permitted),
        ("excluded_subtrees", result.excluded),
    ):
        tree = value[key]
        if tree.native is None:
            continue
        for subtree in tree:
            gn = subtree["base"]
            target.setdefault(gn.name, []).append(_base(gn.name, gn))
    return result


def _names(cert: Certificate, check_subject: bool) -> dict[str, list[Base]]:
    from ._profile import san_entries

    names: dict[str, list[Base]] = {}
    subject = cert.asn1["tbs_certificate"]["subject"].dump()
    if check_subject and not cert.subject_is_empty:
        names.setdefault("directory_name", []).append(rdn_keys(subject))
    for email in attribute_values(subject, _EMAIL_ATTRIBUTE):
        names.setdefault("rfc822_name", []).append(email)
    for kind, raw in san_entries(cert):
        if kind == "directory_name":
            names.setdefault(kind, []).append(rdn_keys(raw.chosen.dump()))  # type: ignore[union-attr]
        elif kind in ("dns_name", "rfc822_name"):
            names.setdefault(kind, []).append(bytes(raw).decode("ascii"))
        else:
            names.setdefault(kind, []).append(bytes(raw))  # type: ignore[arg-type]
    return names


def _dns_match(name: str, base: str) -> bool:
    name = name.lower()
    if not base:
        return True
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _email_match(name: str, base: str) -> bool:
    # domains compare case-insensitively, a local part exactly (RFC 5280 4.2.1.10)
    local, _, domain = name.rpartition("@")
    domain = domain.lower()
    if "@" in base:
        b_local, _, b_domain = base.rpartition("@")
        return local == b_local and domain == b_domain.lower()
    if base.startswith("."):
        return domain.endswith(base.lower())
    return domain == base.lower()


def _ip_match(addr: bytes, base: tuple[bytes, bytes]) -> bool:
    net, mask = base
    if len(addr) != len(net):
        return False
    return all((a & m) == (n & m) for a, n, m in zip(addr, net, mask, strict=True))


def _dir_match(name: tuple[str, ...], base: tuple[str, ...]) -> bool:
    return len(base) <= len(name) and name[: len(base)] == base


def _matches(kind: str, name: Base, base: Base) -> bool:
    if kind == "dns_name":
        return _dns_match(name, base)  # type: ignore[arg-type]
    if kind == "rfc822_name":
        return _email_match(name, base)  # type: ignore[arg-type]
    if kind == "ip_address":
        return _ip_match(name, base)  # type: ignore[arg-type]
    return _dir_match(name, base)  # type: ignore[arg-type]


def check_names(
    cert: Certificate, constraints: list[Constraints], *, check_subject: bool
) -> tuple[str, str] | None:
    """("violation" | "unsupported", message) for the first name outside the constraints."""
    names = _names(cert, check_subject)
    for c in constraints:
        for kind, values in names.items():
            if kind not in SUPPORTED:
                if kind in c.permitted or kind in c.excluded:
                    return (
                        "unsupported",
                        f"a CA above constrains {kind} names, which ebank-auth does not "
                        "process: the certificate's name of that form cannot be checked",
                    )
                continue
            for value in values:
                shown = value if isinstance(value, str) else kind
                if kind in c.permitted and not any(
                    _matches(kind, value, b) for b in c.permitted[kind]
                ):
                    return (
                        "violation",
                        f"{kind} {shown!r} is outside the permitted subtrees of "
                        f"certificate {c.index}",
                    )
                if any(_matches(kind, value, b) for b in c.excluded.get(kind, [])):
                    return (
                        "violation",
                        f"{kind} {shown!r} is inside an excluded subtree of certificate {c.index}",
                    )
    return None
