"""Enveloped XML signatures (crypto/xmldsig.py): round trips, tampering, wrapping, downgrades."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ebank_auth.crypto import sm2, sm2_2p, x509, xmldsig
from ebank_auth.crypto.xmldsig import DS_NS, Canonicalization, XMLReason
from ebank_auth.errors import (
    InvalidKey,
    UnsupportedAlgorithm,
    XMLSignatureError,
    XMLSignatureVerificationError,
)
from pki.helpers import Pki

DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Transfer xmlns="urn:bank:pay" xmlns:unused="urn:x" Id="t1">\n'
    b"  <From>6222 0000 1111</From>\n"
    b'  <To name="Bob">6222 0000 2222</To>\n'
    b'  <Amount currency="CNY">100.00</Amount>\n'
    b"</Transfer>\n"
)
DS = f"{{{DS_NS}}}"


def _sign(pki: Pki, doc: bytes = DOC, **kw: object) -> bytes:
    return xmldsig.sign(doc, pki.leaf_key, pki.leaf, chain=(pki.sub.certificate,), **kw)  # type: ignore[arg-type]


def _check(pki: Pki, doc: bytes) -> xmldsig.XMLValidationResult:
    return xmldsig.validate(doc, trust_roots=pki.roots)


def _edit(doc: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(doc)
    change(root)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _ds(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path, {"ds": DS_NS})
    assert found is not None, path
    return found


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("c14n", list(Canonicalization))
def test_round_trip_both_algorithms_both_canonicalisations(
    any_pki: Pki, c14n: Canonicalization
) -> None:
    signed = _sign(any_pki, canonicalization=c14n)
    result = xmldsig.verify(signed, trust_roots=any_pki.roots)
    assert result.canonical and result.element is not None  # verify raised otherwise
    assert result.certificate == any_pki.leaf
    expected = (
        xmldsig.SignatureMethod.SM2_SM3
        if any_pki.leaf.key_algorithm is x509.KeyAlgorithm.SM2
        else xmldsig.SignatureMethod.RSA_SHA256
    )
    assert result.signature_method is expected and result.canonicalization is c14n
    # the returned element is the signed document element, without the signature
    assert etree.QName(result.element).localname == "Transfer"
    assert result.element.find(f"{DS}Signature") is None
    assert result.element.findtext("{urn:bank:pay}Amount") == "100.00"
    assert b"Signature" not in result.canonical


def test_the_signature_is_the_last_child_and_sm2_values_are_r_concat_s(sm2_pki: Pki) -> None:
    root = etree.fromstring(_sign(sm2_pki))
    assert root[-1].tag == f"{DS}Signature"
    value = base64.b64decode(_ds(root, "ds:Signature/ds:SignatureValue").text or "")
    assert len(value) == 64
    method = _ds(root, "ds:Signature/ds:SignedInfo/ds:SignatureMethod").get("Algorithm")
    digest = _ds(root, "ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestMethod").get("Algorithm")
    assert (method, digest) == (
        xmldsig.SignatureMethod.SM2_SM3.value,
        xmldsig.DigestMethod.SM3.value,
    )


def test_a_two_party_key_signs_through_the_signing_key_protocol(sm2_pki: Pki) -> None:
    phone, server, joint = sm2_2p.local_keygen()
    cert = sm2_pki.sub.issue("CN=Phone Shield,O=ebank-auth,C=CN", joint)
    key = sm2_2p.TwoPartySigningKey(server, sm2_2p.local_phone(phone))
    signed = xmldsig.sign(DOC, key, cert, chain=(sm2_pki.sub.certificate,))
    assert xmldsig.verify(signed, trust_roots=sm2_pki.roots).certificate == cert


def test_the_document_encoding_is_kept(sm2_pki: Pki) -> None:
    doc = '<?xml version="1.0" encoding="GB18030"?><付款 金额="100.00">张三</付款>'.encode(
        "gb18030"
    )
    signed = _sign(sm2_pki, doc)
    assert signed.startswith(b"<?xml version='1.0' encoding='GB18030'?>")
    result = xmldsig.verify(signed, trust_roots=sm2_pki.roots)
    assert result.element.text == "张三"


def test_comments_are_not_signed_and_not_returned(sm2_pki: Pki) -> None:
    """The SAML comment trick: text split by a comment reads differently from what was signed
    unless the caller reads the canonical element, which has no comments."""
    doc = b"<Pay><To>alice@bank.cn<!-- -->.evil.cn</To></Pay>"
    result = xmldsig.verify(_sign(sm2_pki, doc), trust_roots=sm2_pki.roots)
    assert result.element.findtext("To") == "alice@bank.cn.evil.cn"


# ----------------------------------------------------------------------------- tampering


def _set_text(tag: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = root.find(f"{{urn:bank:pay}}{tag}")
        assert el is not None
        el.text = value

    return change


def _flip_b64(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = _ds(root, path)
        raw = bytearray(base64.b64decode(el.text or ""))
        raw[len(raw) // 2] ^= 1
        el.text = base64.b64encode(bytes(raw)).decode()

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set_text("Amount", "900.00"), XMLReason.DIGEST_MISMATCH),
        (_set_text("To", "6222 0000 6666"), XMLReason.DIGEST_MISMATCH),
        (
            lambda r: r.set("Id", "t2"),
            XMLReason.DIGEST_MISMATCH,
        ),
        (
            lambda r: r.insert(0, etree.Element("{urn:bank:pay}Memo")),
            XMLReason.DIGEST_MISMATCH,
        ),
        (
            _flip_b64("ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue"),
            XMLReason.BAD_SIGNATURE,
        ),
        (_flip_b64("ds:Signature/ds:SignatureValue"), XMLReason.BAD_SIGNATURE),
        (
            lambda r: _ds(r, "ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod").set(
                "Algorithm", Canonicalization.INCLUSIVE.value
            ),
            XMLReason.BAD_SIGNATURE,
        ),
        (
            lambda r: (
                _ds(r, "ds:Signature/ds:SignedInfo")
                .getparent()
                .remove(  # type: ignore[union-attr]
                    _ds(r, "ds:Signature/ds:SignedInfo")
                )
            ),
            XMLReason.MALFORMED,
        ),
        (
            lambda r: r.remove(_ds(r, "ds:Signature")),
            XMLReason.NO_SIGNATURE,
        ),
    ],
    ids=[
        "amount",
        "payee",
        "attribute",
        "inserted",
        "digest",
        "signature",
        "c14n",
        "no-signedinfo",
        "unsigned",
    ],
)
def test_tampering_with_each_part_is_refused(
    any_pki: Pki, change: Callable[[etree._Element], None], reason: XMLReason
) -> None:
    signed = _sign(any_pki)
    result = _check(any_pki, _edit(signed, change))
    assert not result.valid and result.reason is reason, result.message
    assert result.element is None and result.canonical is None
    with pytest.raises(XMLSignatureVerificationError) as info:
        xmldsig.verify(_edit(signed, change), trust_roots=any_pki.roots)
    assert info.value.reason is reason


def test_another_certificate_in_key_info_is_refused(sm2_pki: Pki) -> None:
    other_key = sm2.generate_private_key()
    other = sm2_pki.sub.issue("CN=Mallory,O=ebank-auth,C=CN", other_key.public_key())

    def swap(root: etree._Element) -> None:
        _ds(root, "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate").text = base64.b64encode(
            other.to_der()
        ).decode()

    result = _check(sm2_pki, _edit(_sign(sm2_pki), swap))
    assert result.reason is XMLReason.BAD_SIGNATURE


def test_an_untrusted_signer_is_refused(sm2_pki: Pki, rsa_pki: Pki) -> None:
    result = xmldsig.validate(_sign(sm2_pki), trust_roots=rsa_pki.roots)
    assert result.reason is XMLReason.SIGNER_NOT_TRUSTED
    assert result.chain_result is not None and not result.chain_result.valid


def test_the_signer_needs_digital_signature(sm2_pki: Pki) -> None:
    key = sm2.generate_private_key()
    cert = sm2_pki.sub.issue(
        "CN=Encipher Only,O=ebank-auth,C=CN",
        key.public_key(),
        key_usage={x509.KeyUsage.KEY_ENCIPHERMENT},
    )
    signed = xmldsig.sign(DOC, key, cert, chain=(sm2_pki.sub.certificate,))
    assert _check(sm2_pki, signed).reason is XMLReason.SIGNER_NOT_TRUSTED


def test_key_info_may_be_left_out_when_the_certificate_is_supplied(sm2_pki: Pki) -> None:
    bare = _edit(
        _sign(sm2_pki), lambda r: _ds(r, "ds:Signature").remove(_ds(r, "ds:Signature/ds:KeyInfo"))
    )
    assert _check(sm2_pki, bare).reason is XMLReason.CERTIFICATE_MISSING
    result = xmldsig.verify(
        bare,
        trust_roots=sm2_pki.roots,
        intermediates=sm2_pki.intermediates,
        certificates=[sm2_pki.leaf],
    )
    assert result.element is not None


# ----------------------------------------------------------------------------- wrapping


def _wrap_in_new_root(root: etree._Element) -> etree._Element:
    evil = etree.Element("{urn:bank:pay}Batch")
    evil.append(etree.fromstring(etree.tostring(root)))
    return evil


def test_a_signed_document_wrapped_in_another_is_refused(sm2_pki: Pki) -> None:
    signed = _sign(sm2_pki)
    wrapped = etree.tostring(_wrap_in_new_root(etree.fromstring(signed)))
    result = _check(sm2_pki, wrapped)
    assert result.reason is XMLReason.SIGNATURE_WRAPPING


def test_moving_the_original_beside_a_forged_body_is_refused(sm2_pki: Pki) -> None:
    """Classic wrapping: forged content at the root, the signed original hidden inside."""
    signed = etree.fromstring(_sign(sm2_pki))
    sig = _ds(signed, "ds:Signature")
    forged = etree.fromstring(DOC.replace(b"100.00", b"999999.00"))
    hidden = etree.SubElement(forged, "{urn:bank:pay}Hidden")
    signed.remove(sig)
    hidden.append(signed)
    forged.append(sig)
    result = _check(sm2_pki, etree.tostring(forged))
    assert result.reason in (XMLReason.DIGEST_MISMATCH, XMLReason.SIGNATURE_WRAPPING)
    assert not result.valid


@pytest.mark.parametrize(
    "change",
    [
        lambda r: _ds(r, "ds:Signature/ds:SignedInfo/ds:Reference").set("URI", "#t1"),
        lambda r: _ds(r, "ds:Signature/ds:SignedInfo/ds:Reference").attrib.pop("URI"),
        lambda r: r.append(etree.fromstring(etree.tostring(_ds(r, "ds:Signature")))),
        lambda r: r[0].append(r[-1]),  # the signature moved into a child element
        lambda r: etree.SubElement(_ds(r, "ds:Signature"), f"{DS}Object").append(
            etree.Element("x")
        ),
        lambda r: _ds(r, "ds:Signature/ds:SignedInfo").append(
            etree.fromstring(etree.tostring(_ds(r, "ds:Signature/ds:SignedInfo/ds:Reference")))
        ),
    ],
    ids=["uri-fragment", "uri-absent", "two-signatures", "nested", "object", "two-references"],
)
def test_wrapping_shapes_are_refused(
    sm2_pki: Pki, change: Callable[[etree._Element], None]
) -> None:
    result = _check(sm2_pki, _edit(_sign(sm2_pki), change))
    assert result.reason in (XMLReason.SIGNATURE_WRAPPING, XMLReason.MALFORMED), result.message
    assert result.reason is not XMLReason.OK


# ----------------------------------------------------------------------------- downgrades


def _set_alg(path: str, uri: str) -> Callable[[etree._Element], None]:
    return lambda r: _ds(r, path).set("Algorithm", uri)


SM = "ds:Signature/ds:SignedInfo/ds:SignatureMethod"
DM = "ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestMethod"
TF = "ds:Signature/ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform"


@pytest.mark.parametrize(
    "change",
    [
        _set_alg(SM, "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
        _set_alg(SM, "http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
        _set_alg(SM, "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"),
        _set_alg(SM, xmldsig.SignatureMethod.RSA_SHA256.value),  # RSA method, SM2 key/digest
        _set_alg(DM, "http://www.w3.org/2000/09/xmldsig#sha1"),
        _set_alg(DM, xmldsig.DigestMethod.SHA256.value),  # SM2 with a SHA-256 digest
        _set_alg(TF, "http://www.w3.org/TR/1999/REC-xpath-19991116"),
        _set_alg(
            "ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod",
            "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        ),
        lambda r: etree.SubElement(_ds(r, SM), f"{DS}HMACOutputLength").__setattr__("text", "8"),
    ],
    ids=[
        "rsa-sha1",
        "hmac-sha1",
        "hmac-sha256",
        "method-key-mismatch",
        "sha1",
        "sm2-with-sha256",
        "xpath",
        "with-comments",
        "hmac-output-length",
    ],
)
def test_algorithm_downgrades_are_refused(
    sm2_pki: Pki, change: Callable[[etree._Element], None]
) -> None:
    result = _check(sm2_pki, _edit(_sign(sm2_pki), change))
    assert result.reason is XMLReason.UNSUPPORTED_ALGORITHM, result.message


def test_sign_refuses_mismatched_keys_and_methods(sm2_pki: Pki, rsa_pki: Pki) -> None:
    with pytest.raises(InvalidKey):
        xmldsig.sign(DOC, sm2.generate_private_key(), sm2_pki.leaf)
    with pytest.raises(UnsupportedAlgorithm):
        xmldsig.sign(
            DOC, sm2_pki.leaf_key, sm2_pki.leaf, signature_method=xmldsig.SignatureMethod.RSA_SHA256
        )
    with pytest.raises(XMLSignatureError, match="already signed"):
        _sign(sm2_pki, _sign(sm2_pki))


# ----------------------------------------------------------------------------- hostile XML


@pytest.mark.parametrize(
    "doc",
    [
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;&x;">]><a>&y;</a>',
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
        b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/a.dtd"><a/>',
        b"<a><b></a>",
        b"",
        b"<a/>" * 2,
    ],
    ids=["entities", "external-entity", "external-dtd", "ill-formed", "empty", "two-roots"],
)
def test_hostile_or_broken_documents_are_refused(sm2_pki: Pki, doc: bytes) -> None:
    with pytest.raises(XMLSignatureError):
        xmldsig.sign(doc, sm2_pki.leaf_key, sm2_pki.leaf)
    result = _check(sm2_pki, doc)
    assert result.reason is XMLReason.MALFORMED


def test_a_dtd_added_to_a_signed_document_is_refused(sm2_pki: Pki) -> None:
    signed = _sign(sm2_pki).split(b"?>", 1)[1]
    result = _check(sm2_pki, b"<!DOCTYPE Transfer [<!ATTLIST Transfer Id ID #IMPLIED>]>" + signed)
    assert result.reason is XMLReason.MALFORMED and "DTD" in result.message


def test_oversized_documents_are_refused(sm2_pki: Pki) -> None:
    assert (
        xmldsig.validate(b"<a>" + b"x" * 2000 + b"</a>", max_size=1000).reason
        is XMLReason.MALFORMED
    )


# ----------------------------------------------------------------------------- properties

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=40,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payee=_TEXT, memo=_TEXT, c14n=st.sampled_from(list(Canonicalization)))
def test_any_content_round_trips_and_any_change_is_caught(
    sm2_pki: Pki, payee: str, memo: str, c14n: Canonicalization
) -> None:
    root = etree.Element("Transfer")
    etree.SubElement(root, "Payee").text = payee
    etree.SubElement(root, "Memo").text = memo
    doc = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    signed = _sign(sm2_pki, doc, canonicalization=c14n)
    result = _check(sm2_pki, signed)
    assert result.element is not None
    assert (result.element.findtext("Payee"), result.element.findtext("Memo")) == (payee, memo)

    def change(r: etree._Element) -> None:
        el = r.find("Memo")
        assert el is not None
        el.text = memo + "!"

    assert _check(sm2_pki, _edit(signed, change)).reason is XMLReason.DIGEST_MISMATCH
