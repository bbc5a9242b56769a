"""Enveloped XML signatures (XMLDSig structure, GB/T 25061 profile) with SM2/SM3 or RSA-SHA256.

Bank messages are XML; this module signs a whole document and verifies such signatures.
Canonicalisation is lxml's (libxml2) C14N 1.0, exclusive or inclusive, without comments.
lxml is the ``xml`` extra (``pip install 'ebank-auth[xml]'``); this is the only module that
imports it.

Signing (any :class:`~ebank_auth.crypto.keys.SigningKey`: software, USB Key, two-party)::

    from ebank_auth.crypto import xmldsig
    signed = xmldsig.sign(b"<Transfer>...</Transfer>", key, certificate, chain=(sub_ca,))

Verifying::

    result = xmldsig.verify(signed, trust_roots=[root])
    result.element      # the signed element, re-parsed from the exact bytes that were digested
    result.certificate, result.signature_method, result.canonical

The profile (what :func:`sign` writes and all that :func:`verify` accepts):

* exactly one ``ds:Signature`` in the document, a child of the document element;
* one ``ds:Reference`` with ``URI=""`` (the whole document) and the transforms
  enveloped-signature then (optionally) one canonicalisation;
* ``ds:SignatureMethod`` / ``ds:DigestMethod`` as a fixed pair: SM2-SM3 with SM3, or
  RSA-SHA256 with SHA-256 (no SHA-1, no HMAC, no ``HMACOutputLength``);
* ``ds:KeyInfo/ds:X509Data`` with the signer's certificate first (then CA certificates);
* no ``ds:Object``, ``ds:Manifest``, XPath/XSLT transforms, or DTD (entities and ID
  attributes are the raw material of signature wrapping and entity expansion attacks).

``result.element`` is not the input document: it is parsed from the canonical bytes the
digest was computed over, so a caller cannot read data that was not signed (comments, a
second copy of an element, whitespace the signer did not see).

SM2 signature values are the 64-byte ``r || s`` (each 32 bytes, big-endian), as XMLDSig 1.1
encodes ECDSA values; the SM2 signer uses the default ID ``1234567812345678``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from lxml import etree

from ebank_auth.crypto import sm3
from ebank_auth.crypto._asn1 import decode_rs, encode_rs
from ebank_auth.crypto.keys import (
    KeyAlgorithm,
    SignatureAlgorithm,
    SigningKey,
    key_algorithm,
    public_key_to_spki,
    verify_data,
)
from ebank_auth.crypto.x509.certificate import Certificate, KeyUsage, as_certificates, parse_der
from ebank_auth.crypto.x509.chain import ValidationResult, validate_chain
from ebank_auth.crypto.x509.crl import CertificateRevocationList
from ebank_auth.errors import (
    EbankAuthError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
    XMLSignatureError,
    XMLSignatureVerificationError,
)

__all__ = [
    "DS_NS",
    "ENVELOPED_SIGNATURE",
    "Canonicalization",
    "DigestMethod",
    "SignatureMethod",
    "SignedXML",
    "XMLReason",
    "XMLValidationResult",
    "sign",
    "validate",
    "verify",
]

DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED_SIGNATURE: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
MAX_XML_SIZE: Final = 4 * 1024 * 1024
MAX_CERTIFICATES: Final = 8


class SignatureMethod(str, Enum):
    """ds:SignatureMethod URIs.  SM2-SM3 has no IANA-registered XML URI; this is the one in
    the RFC 6931 ``xmldsig-more`` namespace family that GM toolkits use (docs explain)."""

    SM2_SM3 = "http://www.w3.org/2007/05/xmldsig-more#sm2-sm3"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


class DigestMethod(str, Enum):
    """ds:DigestMethod URIs (SHA-256 as registered by XML Encryption)."""

    SM3 = "http://www.w3.org/2007/05/xmldsig-more#sm3"
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


class Canonicalization(str, Enum):
    """C14N 1.0 without comments: exclusive (the default) or inclusive."""

    EXCLUSIVE = "http://www.w3.org/2001/10/xml-exc-c14n#"
    INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


_PAIRS: Final = {
    SignatureMethod.SM2_SM3: (DigestMethod.SM3, SignatureAlgorithm.SM2_SM3, KeyAlgorithm.SM2),
    SignatureMethod.RSA_SHA256: (
        DigestMethod.SHA256,
        SignatureAlgorithm.SHA256_RSA,
        KeyAlgorithm.RSA,
    ),
}


class XMLReason(str, Enum):
    """Why an XML signature was accepted or refused."""

    OK = "ok"
    MALFORMED = "malformed"
    NO_SIGNATURE = "no_signature"
    SIGNATURE_WRAPPING = "signature_wrapping"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    CERTIFICATE_MISSING = "certificate_missing"
    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    SIGNER_NOT_TRUSTED = "signer_not_trusted"


@dataclass(frozen=True)
class SignedXML:
    """What :func:`verify` accepted: ``element`` the signed document element, parsed from
    ``canonical`` (the octets the reference digest covers), the signer's ``certificate`` and
    the algorithms used.  There is no verdict in it: :func:`verify` raised otherwise."""

    element: Any
    canonical: bytes
    certificate: Certificate | None
    signature_method: SignatureMethod | None
    canonicalization: Canonicalization | None


@dataclass(frozen=True)
class XMLValidationResult:
    """Outcome of :func:`validate`.

    ``element``: the signed document element, parsed from ``canonical`` (the octets the
    reference digest covers); None unless valid.  ``certificate``: the signer's (when found).
    ``chain_result``: the certificate path verdict (when checked).
    """

    valid: bool
    reason: XMLReason
    message: str
    element: Any = None  # lxml.etree._Element (lxml ships no type information)
    canonical: bytes | None = None
    certificate: Certificate | None = None
    signature_method: SignatureMethod | None = None
    canonicalization: Canonicalization | None = None
    chain_result: ValidationResult | None = None

    def raise_for_status(self) -> None:
        """Raise errors.XMLSignatureVerificationError(reason=...) unless valid."""
        if not self.valid:
            raise XMLSignatureVerificationError(self.message, reason=self.reason, result=self)


class _Refused(Exception):
    def __init__(self, reason: XMLReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _q(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


# ----------------------------------------------------------------------------- parsing


def _parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


def _parse(document: bytes, max_size: int) -> Any:
    if not isinstance(document, (bytes, bytearray)):
        raise XMLSignatureError("the XML document must be bytes (its encoding is declared inside)")
    data = bytes(document)
    if len(data) > max_size:
        raise XMLSignatureError(f"the XML document is larger than {max_size} bytes")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XMLSignatureError(f"the XML document is not well-formed: {exc}") from None
    tree = root.getroottree()
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XMLSignatureError(
            "the XML document has a DTD (DOCTYPE): refused, a DTD can declare entities and ID "
            "attributes; send the document without it"
        )
    return tree


def _c14n(node: Any, method: Canonicalization) -> bytes:
    out = etree.tostring(
        node,
        method="c14n",
        exclusive=method is Canonicalization.EXCLUSIVE,
        with_comments=False,
    )
    return bytes(out)


_XML_NS: Final = "{http://www.w3.org/XML/1998/namespace}"


def _c14n_signed_info(signed_info: Any, method: Canonicalization) -> bytes:
    """Canonical ds:SignedInfo as a document subset (its ancestors left out).

    Inclusive C14N is computed over a standalone copy that declares every namespace in
    scope and carries the xml:* attributes inherited from ancestors (C14N 1.0 §2.4):
    libxml2, through lxml, writes a wrong ``xmlns=""`` on grandchildren when the
    signature redeclares the default namespace of an ancestor, which xmlsec1 does not.
    """
    if method is Canonicalization.EXCLUSIVE:
        return _c14n(signed_info, method)
    apex = etree.Element(signed_info.tag, nsmap=signed_info.nsmap)
    for name, value in signed_info.attrib.items():
        apex.set(name, value)
    for ancestor in signed_info.iterancestors():
        for name, value in ancestor.attrib.items():
            if name.startswith(_XML_NS) and apex.get(name) is None:
                apex.set(name, value)
    apex.text = signed_info.text
    for child in signed_info:
        apex.append(copy.deepcopy(child))
    return _c14n(apex, method)


def _digest(method: DigestMethod, data: bytes) -> bytes:
    if method is DigestMethod.SM3:
        return sm3.digest(data)
    return hashlib.sha256(data).digest()


def _b64(text: str | None, what: str) -> bytes:
    compact = "".join((text or "").split())
    try:
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _Refused(XMLReason.MALFORMED, f"{what} is not valid base64") from None


# ----------------------------------------------------------------------------- signing


def _method_for(key: SigningKey) -> SignatureMethod:
    kind = key_algorithm(key.public_key())
    if kind is KeyAlgorithm.SM2:
        return SignatureMethod.SM2_SM3
    if kind is KeyAlgorithm.RSA:
        return SignatureMethod.RSA_SHA256
    raise UnsupportedAlgorithm("XML signatures here use SM2 or RSA keys, not ECDSA P-256")


def _sub(parent: Any, tag: str, **attrs: str) -> Any:
    return etree.SubElement(parent, _q(tag), attrs)


def sign(
    document: bytes,
    key: SigningKey,
    certificate: Certificate,
    *,
    chain: Sequence[Certificate] = (),
    canonicalization: Canonicalization = Canonicalization.EXCLUSIVE,
    signature_method: SignatureMethod | None = None,
    max_size: int = MAX_XML_SIZE,
) -> bytes:
    """Sign the whole ``document`` with an enveloped signature; returns the signed document.

    The ``ds:Signature`` becomes the last child of the document element; the document keeps
    its encoding.  ``signature_method`` defaults to SM2-SM3 for SM2 keys and RSA-SHA256 for
    RSA keys; ``chain`` (CA certificates, issuer first) goes into KeyInfo after the signer's.
    A document that already holds a ds:Signature is refused (one signature per document).
    """
    tree = _parse(document, max_size)
    root = tree.getroot()
    if next(root.iter(_q("Signature")), None) is not None:
        raise XMLSignatureError("the document is already signed (it holds a ds:Signature)")
    method = SignatureMethod(signature_method) if signature_method else _method_for(key)
    digest_method, algorithm, key_kind = _PAIRS[method]
    if key_algorithm(key.public_key()) is not key_kind:
        raise UnsupportedAlgorithm(f"{method.name} needs an {key_kind.value} key")
    if public_key_to_spki(key.public_key()) != certificate.spki_der:
        raise InvalidKey(f"the key does not match the certificate {certificate.subject!r}")
    if len(chain) + 1 > MAX_CERTIFICATES:
        raise XMLSignatureError(f"at most {MAX_CERTIFICATES} certificates go into KeyInfo")
    c14n = Canonicalization(canonicalization)
    digest = _digest(digest_method, _c14n(tree, c14n))  # what the enveloped transform yields

    signature = etree.SubElement(root, _q("Signature"), nsmap={"ds": DS_NS})
    signed_info = _sub(signature, "SignedInfo")
    _sub(signed_info, "CanonicalizationMethod", Algorithm=c14n.value)
    _sub(signed_info, "SignatureMethod", Algorithm=method.value)
    reference = _sub(signed_info, "Reference", URI="")
    transforms = _sub(reference, "Transforms")
    _sub(transforms, "Transform", Algorithm=ENVELOPED_SIGNATURE)
    _sub(transforms, "Transform", Algorithm=c14n.value)
    _sub(reference, "DigestMethod", Algorithm=digest_method.value)
    _sub(reference, "DigestValue").text = base64.b64encode(digest).decode("ascii")
    value = _sub(signature, "SignatureValue")
    x509_data = _sub(_sub(signature, "KeyInfo"), "X509Data")
    for cert in (certificate, *chain):
        _sub(x509_data, "X509Certificate").text = base64.b64encode(cert.to_der()).decode("ascii")

    raw = key.sign_with(algorithm, _c14n_signed_info(signed_info, c14n))
    if method is SignatureMethod.SM2_SM3:
        r, s = decode_rs(raw)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    value.text = base64.b64encode(raw).decode("ascii")
    out = etree.tostring(tree, encoding=tree.docinfo.encoding or "UTF-8", xml_declaration=True)
    return bytes(out)


# ----------------------------------------------------------------------------- verifying


def _children(el: Any, what: str) -> list[Any]:
    """Element children of ``el``; refuses text, comments and PIs between them."""
    if (el.text or "").strip():
        raise _Refused(XMLReason.MALFORMED, f"{what} holds text where elements are expected")
    out = []
    for child in el:
        if not isinstance(child.tag, str):
            raise _Refused(XMLReason.MALFORMED, f"{what} holds a comment or processing instruction")
        if (child.tail or "").strip():
            raise _Refused(XMLReason.MALFORMED, f"{what} holds text between its elements")
        out.append(child)
    return out


def _expect(children: list[Any], names: Sequence[str], what: str) -> None:
    got = [c.tag for c in children]
    if got != [_q(n) for n in names]:
        local = [etree.QName(t).localname if isinstance(t, str) else "?" for t in got]
        raise _Refused(
            XMLReason.MALFORMED,
            f"{what} must hold {', '.join(names)} in that order (found {', '.join(local) or 'none'})",
        )


def _attrs(el: Any, allowed: Iterable[str], what: str) -> None:
    extra = set(el.attrib) - set(allowed)
    if extra:
        raise _Refused(XMLReason.MALFORMED, f"{what} has unexpected attributes {sorted(extra)}")


def _algorithm(el: Any, what: str) -> str:
    _attrs(el, ("Algorithm",), what)
    if _children(el, what):
        raise _Refused(XMLReason.UNSUPPORTED_ALGORITHM, f"{what} must have no parameters")
    uri = el.get("Algorithm")
    if not uri:
        raise _Refused(XMLReason.MALFORMED, f"{what} has no Algorithm")
    return str(uri)


@dataclass(frozen=True)
class _Parsed:
    signature: Any
    signed_info: Any
    c14n: Canonicalization
    method: SignatureMethod
    reference_c14n: Canonicalization
    digest_value: bytes
    signature_value: bytes
    certificates: tuple[Certificate, ...]


def _structure(tree: Any) -> _Parsed:
    root = tree.getroot()
    found = list(root.iter(_q("Signature")))
    if not found:
        raise _Refused(XMLReason.NO_SIGNATURE, "the document holds no ds:Signature")
    if len(found) > 1:
        raise _Refused(
            XMLReason.SIGNATURE_WRAPPING,
            f"the document holds {len(found)} ds:Signature elements; exactly one is accepted",
        )
    sig = found[0]
    if sig.getparent() is not root:
        raise _Refused(
            XMLReason.SIGNATURE_WRAPPING,
            "the ds:Signature is not a child of the document element: it does not sign the "
            "element that would be returned",
        )
    _attrs(sig, ("Id",), "ds:Signature")
    parts = _children(sig, "ds:Signature")
    names = [
        etree.QName(p.tag).localname if p.tag.startswith(f"{{{DS_NS}}}") else "" for p in parts
    ]
    if "Object" in names:
        raise _Refused(XMLReason.SIGNATURE_WRAPPING, "ds:Object is not accepted in this profile")
    _expect(parts, ("SignedInfo", "SignatureValue", "KeyInfo")[: len(parts)], "ds:Signature")
    if len(parts) < 2:
        raise _Refused(XMLReason.MALFORMED, "ds:Signature lacks ds:SignatureValue")
    signed_info, sig_value = parts[0], parts[1]
    _attrs(signed_info, ("Id",), "ds:SignedInfo")
    si = _children(signed_info, "ds:SignedInfo")
    if sum(c.tag == _q("Reference") for c in si) > 1:
        raise _Refused(
            XMLReason.SIGNATURE_WRAPPING, "ds:SignedInfo holds more than one ds:Reference"
        )
    _expect(si, ("CanonicalizationMethod", "SignatureMethod", "Reference"), "ds:SignedInfo")
    try:
        c14n = Canonicalization(_algorithm(si[0], "ds:CanonicalizationMethod"))
    except ValueError:
        raise _Refused(
            XMLReason.UNSUPPORTED_ALGORITHM,
            "canonicalisation must be exclusive or inclusive C14N 1.0 without comments",
        ) from None
    try:
        method = SignatureMethod(_algorithm(si[1], "ds:SignatureMethod"))
    except ValueError:
        raise _Refused(
            XMLReason.UNSUPPORTED_ALGORITHM,
            f"signature method {si[1].get('Algorithm')} is not accepted: use "
            f"{SignatureMethod.SM2_SM3.value} or {SignatureMethod.RSA_SHA256.value}",
        ) from None
    ref = si[2]
    _attrs(ref, ("URI", "Id", "Type"), "ds:Reference")
    if ref.get("URI") != "":
        raise _Refused(
            XMLReason.SIGNATURE_WRAPPING,
            'the ds:Reference must be URI="" (the whole document); references to parts of a '
            "document are refused",
        )
    rc = _children(ref, "ds:Reference")
    _expect(rc, ("Transforms", "DigestMethod", "DigestValue"), "ds:Reference")
    _attrs(rc[0], (), "ds:Transforms")
    transforms = _children(rc[0], "ds:Transforms")
    if not 1 <= len(transforms) <= 2 or any(t.tag != _q("Transform") for t in transforms):
        raise _Refused(
            XMLReason.UNSUPPORTED_ALGORITHM,
            "ds:Transforms must be the enveloped-signature transform and at most one "
            "canonicalisation",
        )
    if _algorithm(transforms[0], "ds:Transform") != ENVELOPED_SIGNATURE:
        raise _Refused(
            XMLReason.UNSUPPORTED_ALGORITHM, "the first transform must be enveloped-signature"
        )
    reference_c14n = Canonicalization.INCLUSIVE  # XMLDSig's default node-set conversion
    if len(transforms) == 2:
        try:
            reference_c14n = Canonicalization(_algorithm(transforms[1], "ds:Transform"))
        except ValueError:
            raise _Refused(
                XMLReason.UNSUPPORTED_ALGORITHM,
                "the second transform must be exclusive or inclusive C14N 1.0",
            ) from None
    expected_digest = _PAIRS[method][0]
    if _algorithm(rc[1], "ds:DigestMethod") != expected_digest.value:
        raise _Refused(
            XMLReason.UNSUPPORTED_ALGORITHM,
            f"{method.name} goes with the digest {expected_digest.value} only",
        )
    _attrs(rc[2], (), "ds:DigestValue")
    if len(rc[2]):
        raise _Refused(XMLReason.MALFORMED, "ds:DigestValue holds elements")
    digest_value = _b64(rc[2].text, "ds:DigestValue")
    _attrs(sig_value, ("Id",), "ds:SignatureValue")
    if len(sig_value):
        raise _Refused(XMLReason.MALFORMED, "ds:SignatureValue holds elements")
    signature_value = _b64(sig_value.text, "ds:SignatureValue")
    certs = _key_info_certificates(parts[2]) if len(parts) == 3 else ()
    return _Parsed(
        sig, signed_info, c14n, method, reference_c14n, digest_value, signature_value, certs
    )


_IGNORED_X509: Final = {_q(n) for n in ("X509IssuerSerial", "X509SubjectName", "X509SKI")}


def _key_info_certificates(key_info: Any) -> tuple[Certificate, ...]:
    _attrs(key_info, ("Id",), "ds:KeyInfo")
    certs: list[Certificate] = []
    for child in _children(key_info, "ds:KeyInfo"):
        if child.tag == _q("KeyName"):
            continue  # a hint only: trust comes from the certificate path
        if child.tag != _q("X509Data"):
            raise _Refused(
                XMLReason.MALFORMED, "ds:KeyInfo may hold ds:X509Data (and ds:KeyName) only"
            )
        for item in _children(child, "ds:X509Data"):
            if item.tag in _IGNORED_X509:
                continue
            if item.tag != _q("X509Certificate") or len(item):
                raise _Refused(XMLReason.MALFORMED, "ds:X509Data holds an unexpected element")
            if len(certs) >= MAX_CERTIFICATES:
                raise _Refused(XMLReason.MALFORMED, "ds:KeyInfo holds too many certificates")
            try:
                certs.append(parse_der(_b64(item.text, "ds:X509Certificate")))
            except EbankAuthError as exc:
                raise _Refused(XMLReason.MALFORMED, f"ds:X509Certificate: {exc.message}") from None
    return tuple(certs)


def _remove_keeping_tail(el: Any) -> None:
    """Remove ``el`` as the enveloped-signature transform does: its tail text stays."""
    parent = el.getparent()
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def validate(
    document: bytes,
    *,
    trust_roots: Iterable[Certificate | bytes] = (),
    intermediates: Iterable[Certificate | bytes] = (),
    certificates: Iterable[Certificate | bytes] = (),
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None = KeyUsage.DIGITAL_SIGNATURE,
    max_size: int = MAX_XML_SIZE,
) -> XMLValidationResult:
    """Check an enveloped XML signature and report; never raises for bad input.

    ``certificates``: the signer's certificate when KeyInfo does not carry one (KeyInfo's
    first X509Certificate is the signer otherwise).  ``intermediates`` and KeyInfo's other
    certificates build the path to ``trust_roots``; ``at`` is the validation time.
    """
    method: SignatureMethod | None = None
    c14n: Canonicalization | None = None
    cert: Certificate | None = None

    def fail(
        reason: XMLReason, message: str, chain: ValidationResult | None = None
    ) -> XMLValidationResult:
        return XMLValidationResult(False, reason, message, None, None, cert, method, c14n, chain)

    try:
        tree = _parse(document, max_size)
        parsed = _structure(tree)
        method, c14n = parsed.method, parsed.c14n
        supplied = as_certificates(certificates)
        pool = (*parsed.certificates, *supplied)
        if not pool:
            return fail(
                XMLReason.CERTIFICATE_MISSING,
                "no signer certificate: KeyInfo carries none and none was supplied",
            )
        cert = pool[0]
        _, algorithm, key_kind = _PAIRS[parsed.method]
        if cert.key_algorithm is not key_kind:
            return fail(
                XMLReason.UNSUPPORTED_ALGORITHM,
                f"{parsed.method.name} needs an {key_kind.value} certificate, "
                f"the signer's is {cert.key_algorithm.value if cert.key_algorithm else 'other'}",
            )
        value = parsed.signature_value
        if parsed.method is SignatureMethod.SM2_SM3:
            if len(value) != 64:
                return fail(XMLReason.BAD_SIGNATURE, "an SM2 SignatureValue is 64 bytes (r || s)")
            value = encode_rs(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))
        try:
            signed_octets = _c14n_signed_info(parsed.signed_info, parsed.c14n)
            verify_data(cert.public_key, algorithm, value, signed_octets)
        except InvalidSignature:
            return fail(
                XMLReason.BAD_SIGNATURE,
                "the signature over ds:SignedInfo does not verify with the signer's certificate",
            )
        # the reference: the same document, the signature removed, canonicalised
        copy = _parse(document, max_size)
        position = list(tree.getroot()).index(parsed.signature)
        _remove_keeping_tail(list(copy.getroot())[position])
        canonical = _c14n(copy, parsed.reference_c14n)
        digest = _digest(_PAIRS[parsed.method][0], canonical)
        if not hmac.compare_digest(digest, parsed.digest_value):
            return fail(
                XMLReason.DIGEST_MISMATCH,
                "the document's digest does not match the signed ds:DigestValue: the document "
                "was altered after signing",
            )
        chain = validate_chain(
            cert,
            (*as_certificates(intermediates), *pool[1:]),
            as_certificates(trust_roots),
            at=at,
            crls=crls,
            required_key_usage=required_key_usage,
        )
        if not chain.valid:
            return fail(
                XMLReason.SIGNER_NOT_TRUSTED,
                f"signer certificate not trusted: {chain.reason.value}: {chain.message}",
                chain,
            )
        element = etree.fromstring(canonical, _parser())
    except _Refused as exc:
        return fail(exc.reason, exc.message)
    except (EbankAuthError, etree.LxmlError, ValueError) as exc:  # fail closed
        message = exc.message if isinstance(exc, EbankAuthError) else str(exc)
        return fail(XMLReason.MALFORMED, message)
    return XMLValidationResult(
        True, XMLReason.OK, "signature valid", element, canonical, cert, method, c14n, chain
    )


def verify(
    document: bytes,
    *,
    trust_roots: Iterable[Certificate | bytes] = (),
    intermediates: Iterable[Certificate | bytes] = (),
    certificates: Iterable[Certificate | bytes] = (),
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None = KeyUsage.DIGITAL_SIGNATURE,
    max_size: int = MAX_XML_SIZE,
) -> SignedXML:
    """Accept a signed XML document or raise errors.XMLSignatureVerificationError
    (``.reason``: :class:`XMLReason`).  Use ``.element`` of the answer — the signed element —
    never the document you passed in.  Parameters as for :func:`validate` (which reports
    instead of raising)."""
    result = validate(
        document,
        trust_roots=trust_roots,
        intermediates=intermediates,
        certificates=certificates,
        at=at,
        crls=crls,
        required_key_usage=required_key_usage,
        max_size=max_size,
    )
    result.raise_for_status()
    return SignedXML(
        element=result.element,
        canonical=result.canonical or b"",
        certificate=result.certificate,
        signature_method=result.signature_method,
        canonicalization=result.canonicalization,
    )
