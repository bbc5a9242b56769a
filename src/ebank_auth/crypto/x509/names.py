"""Distinguished names: parse ``"CN=Alice,O=Bank,C=CN"`` and print them back.

Strings follow RFC 4514 order (most specific RDN first, as OpenSSL's
``-nameopt RFC2253`` prints them); the DER keeps the X.500 order (C first).
Attribute values are UTF8String except C and serialNumber (PrintableString),
matching what CFCA-style certificates carry.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from asn1crypto import core as a_core
from asn1crypto import x509 as a_x509

from ebank_auth.errors import EncodingError

__all__ = ["attribute_values", "build_name", "format_name", "name_key", "parse_name", "rdn_keys"]

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


def format_name(name: a_x509.Name | bytes) -> str:
    """RFC 4514-style string (most specific first), e.g. ``CN=Alice,O=Bank,C=CN``.

    Values that are not strings print as ``#`` + hex of their DER.  Raises
    ValueError on a malformed name.
    """
    parts: list[str] = []
    for rdn in reversed(_rdns(name)):
        items = []
        for oid, tag, body, tlv in rdn:
            short = _BY_OID.get(oid, oid)
            codec = _STRING_CODECS.get(tag)
            text = body.decode(codec) if codec else "#" + tlv.hex()
            items.append(f"{short}={_escape(text) if codec else text}")
        parts.append("+".join(items))
    return ",".join(parts)


_STRING_CODECS: Final[dict[int, str]] = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString (as asn1crypto reads it)
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``."""
    if pos + 2 > end:
        raise ValueError("truncated name")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("unexpected high tag number in a name")
    first = data[pos + 1]
    pos += 2
    if first & 0x80:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise ValueError("bad length in a name")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    else:
        length = first
    if pos + length > end:
        raise ValueError("truncated name")
    return tag, pos, pos + length


def _oid_text(body: bytes) -> str:
    if not body or body[-1] & 0x80:
        raise ValueError("bad OBJECT IDENTIFIER in a name")
    arcs: list[int] = []
    value = 0
    for b in body:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def _rdns(name: a_x509.Name | bytes) -> list[list[tuple[str, int, bytes, bytes]]]:
    """Split a Name's DER into RDNs of (oid, value tag, value contents, value TLV)."""
    der = bytes(name.dump()) if isinstance(name, a_x509.Name) else bytes(name)
    tag, pos, end = _tlv(der, 0, len(der))
    if tag != 0x30 or end != len(der):
        raise ValueError("a name must be one SEQUENCE")
    rdns: list[list[tuple[str, int, bytes, bytes]]] = []
    while pos < end:
        tag, rpos, rend = _tlv(der, pos, end)
        if tag != 0x31 or rpos == rend:
            raise ValueError("a name's RDN must be a non-empty SET")
        rdn: list[tuple[str, int, bytes, bytes]] = []
        while rpos < rend:
            tag, apos, aend = _tlv(der, rpos, rend)
            if tag != 0x30:
                raise ValueError("a name attribute must be a SEQUENCE")
            otag, opos, oend = _tlv(der, apos, aend)
            if otag != 0x06:
                raise ValueError("a name attribute must start with an OID")
            vtag, vpos, vend = _tlv(der, oend, aend)
            if vend != aend:
                raise ValueError("trailing data in a name attribute")
            rdn.append((_oid_text(der[opos:oend]), vtag, der[vpos:vend], der[oend:vend]))
            rpos = aend
        rdns.append(rdn)
        pos = rend
    return rdns


def rdn_keys(name: a_x509.Name | bytes) -> tuple[str, ...]:
    """The normalised RDNs of a name in DER order (least specific first).

    Each RDN is normalised as in :func:`name_key`; name constraints compare these
    (a directoryName subtree is a prefix of RDNs).  Raises ValueError when malformed.
    """
    parts: list[str] = []
    for rdn in _rdns(name):
        items: list[str] = []
        for oid, tag, body, tlv in rdn:
            codec = _STRING_CODECS.get(tag)
            if codec is not None:
                text = " ".join(
                    unicodedata.normalize("NFKC", body.decode(codec)).casefold().split()
                )
                items.append(oid + "=" + text)
            else:
                items.append(oid + "#" + tlv.hex())
        parts.append("+".join(sorted(items)))
    return tuple(parts)


def attribute_values(name: a_x509.Name | bytes, oid: str) -> list[str]:
    """The string values of every attribute ``oid`` in a name (e.g. emailAddress)."""
    out: list[str] = []
    for rdn in _rdns(name):
        for attr_oid, tag, body, _ in rdn:
            codec = _STRING_CODECS.get(tag)
            if attr_oid == oid and codec is not None:
                out.append(body.decode(codec))
    return out


def name_key(name: a_x509.Name | bytes) -> str:
    """Normalised form of a name for RFC 5280 name matching.

    Each string attribute is NFKC-normalised, case-folded and has its inner
    white space collapsed (the parts of RFC 4518 preparation that matter for
    real names); multi-valued RDNs are order-independent; values that are not
    strings compare by their DER.  Reads the DER directly: it runs on every
    certificate and must stay cheap.  Raises ValueError on malformed names.
    """
    return "/".join(rdn_keys(name))
