"""Distinguished names: parse ``"CN=Alice,O=Bank,C=CN"`` and print them back.

Strings follow RFC 4514 order (most specific RDN first, as OpenSSL's
``-nameopt RFC2253`` prints them); the DER keeps the X.500 order (C first).
Attribute values are UTF8String except C and serialNumber (PrintableString),
matching what CFCA-style certificates carry.
"""

from __future__ import annotations

from typing import Final

from asn1crypto import core as a_core
from asn1crypto import x509 as a_x509

from ebank_auth.errors import EncodingError

__all__ = ["build_name", "format_name", "parse_name"]

# short name -> (asn1crypto type name, dotted OID)
_ATTRS: Final[dict[str, tuple[str, str]]] = {
    "CN": ("common_name", "2.5.4.3"),
    "SN": ("surname", "2.5.4.4"),
    "SERIALNUMBER": ("serial_number", "2.5.4.5"),
    "C": ("country_name", "2.5.4.6"),
    "L": ("locality_name", "2.5.4.7"),
    "ST": ("state_or_province_name", "2.5.4.8"),
    "STREET": ("street_address", "2.5.4.9"),
    "O": ("organization_name", "2.5.4.10"),
    "OU": ("organizational_unit_name", "2.5.4.11"),
    "T": ("title", "2.5.4.12"),
    "GN": ("given_name", "2.5.4.42"),
    "EMAILADDRESS": ("email_address", "1.2.840.113549.1.9.1"),
    "DC": ("domain_component", "0.9.2342.19200300.100.1.25"),
    "UID": ("user_id", "0.9.2342.19200300.100.1.1"),
}
_BY_OID: Final[dict[str, str]] = {oid: short for short, (_, oid) in _ATTRS.items()}
_PRINTABLE: Final = frozenset({"C", "SERIALNUMBER"})
MAX_NAME_LENGTH: Final = 4096


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_name(text: str) -> list[tuple[str, str]]:
    """Parse ``"CN=x,O=y"`` (or OpenSSL's ``"/O=y/CN=x"``) into (SHORT, value) pairs.

    The returned list is in RFC 4514 order (most specific first).  Raises
    EncodingError on unknown attributes or empty values.
    """
    if not isinstance(text, str) or not text.strip():
        raise EncodingError("distinguished name is empty: give e.g. 'CN=Alice,O=Bank,C=CN'")
    if len(text) > MAX_NAME_LENGTH:
        raise EncodingError("distinguished name is too long")
    text = text.strip()
    if text.startswith("/"):
        parts = [p for p in _split_unescaped(text[1:], "/") if p]
        parts.reverse()
    else:
        parts = _split_unescaped(text, ",")
    result: list[tuple[str, str]] = []
    for part in parts:
        key, eq, value = part.partition("=")
        short = key.strip().upper()
        if not eq or short not in _ATTRS:
            raise EncodingError(
                f"distinguished name part {part.strip()!r} is not ATTR=value with ATTR in "
                + ", ".join(sorted(_ATTRS))
            )
        val = _unescape(value.strip())
        if not val:
            raise EncodingError(f"distinguished name attribute {short} has an empty value")
        result.append((short, val))
    return result


def build_name(name: str | a_x509.Name) -> a_x509.Name:
    """Return an asn1crypto Name for a DN string (or pass a Name through)."""
    if isinstance(name, a_x509.Name):
        return name
    pairs = parse_name(name)
    rdns = []
    for short, value in reversed(pairs):  # DER order: least specific first
        type_name, _ = _ATTRS[short]
        val: a_core.Asn1Value
        if short == "EMAILADDRESS":
            val = a_x509.EmailAddress(value)
        elif short == "DC":
            val = a_x509.DNSName(value)
        elif short in _PRINTABLE:
            try:
                val = a_x509.DirectoryString(
                    name="printable_string", value=a_core.PrintableString(value)
                )
            except ValueError as exc:
                raise EncodingError(f"{short} must be printable ASCII") from exc
        else:
            val = a_x509.DirectoryString(name="utf8_string", value=a_core.UTF8String(value))
        rdns.append(
            a_x509.RelativeDistinguishedName(
                [a_x509.NameTypeAndValue({"type": type_name, "value": val})]
            )
        )
    return a_x509.Name(name="", value=a_x509.RDNSequence(rdns))


def _escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def format_name(name: a_x509.Name) -> str:
    """RFC 4514-style string (most specific first), e.g. ``CN=Alice,O=Bank,C=CN``."""
    parts: list[str] = []
    for rdn in reversed(list(name.chosen)):
        items = []
        for atv in rdn:
            oid = atv["type"].dotted
            short = _BY_OID.get(oid, oid)
            native = atv["value"].native
            text = native if isinstance(native, str) else "#" + atv["value"].dump().hex()
            items.append(f"{short}={_escape(text)}")
        parts.append("+".join(items))
    return ",".join(parts)
