"""Name constraints (RFC 5280 4.2.1.10, 6.1.3 (b)/(c)): directoryName, dNSName,
rfc822Name and iPAddress, permitted and excluded subtrees (issue 11 item 17).

A bank's issuing CAs are constrained to the bank's names; a certificate they issue
outside them must be refused even when the constraint is (wrongly) non-critical.
"""

from __future__ import annotations

import ipaddress
import string
from typing import Any

import pytest
from asn1crypto import x509 as a_x509
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2, x509
from pki.helpers import Pki, forge

KEY = sm2.generate_private_key()


def _gn(kind: str, value: Any) -> a_x509.GeneralName:
    if kind == "directory_name":
        from ebank_auth.crypto.x509.names import build_name

        return a_x509.GeneralName(name=kind, value=build_name(value))
    if kind == "ip_address":
        net = ipaddress.ip_network(value)
        raw = net.network_address.packed + net.netmask.packed
        return a_x509.GeneralName.load(b"\x87" + bytes([len(raw)]) + raw)
    return a_x509.GeneralName(name=kind, value=value)


def _nc(permitted: list[tuple[str, Any]] = (), excluded: list[tuple[str, Any]] = ()) -> Any:  # type: ignore[assignment]
    value: dict[str, Any] = {}
    if permitted:
        value["permitted_subtrees"] = [{"base": _gn(k, v)} for k, v in permitted]
    if excluded:
        value["excluded_subtrees"] = [{"base": _gn(k, v)} for k, v in excluded]
    return a_x509.NameConstraints(value)


def _constrained_ca(
    pki: Pki, nc: Any, critical: bool = True, subject: str = "CN=Branch CA,O=Bank,C=CN"
) -> x509.CertificateAuthority:
    key = sm2.generate_private_key()
    cert = forge(pki.root, subject, is_ca=True, key=key, add=(("name_constraints", critical, nc),))
    return x509.CertificateAuthority(cert, key, (pki.root.certificate,))


def _leaf(
    ca: x509.CertificateAuthority, subject: str | None, sans: list[tuple[str, Any]] = ()
) -> x509.Certificate:  # type: ignore[assignment]
    add: tuple[tuple[str, bool, object], ...] = ()
    if sans:
        gns = []
        for k, v in sans:
            if k == "ip_address":
                packed = ipaddress.ip_address(v).packed
                gns.append(a_x509.GeneralName.load(b"\x87" + bytes([len(packed)]) + packed))
            else:
                gns.append(_gn(k, v))
        add = (("subject_alt_name", subject is None, a_x509.GeneralNames(gns)),)
    return forge(ca, subject, add=add)


def _result(ca: x509.CertificateAuthority, leaf: x509.Certificate) -> x509.ValidationResult:
    return x509.validate_chain(leaf, [ca.certificate], ca.chain[-1:])


def _ok(ca: x509.CertificateAuthority, leaf: x509.Certificate) -> None:
    result = _result(ca, leaf)
    assert result.valid, result.message


def _violation(ca: x509.CertificateAuthority, leaf: x509.Certificate) -> None:
    result = _result(ca, leaf)
    assert not result.valid, f"accepted: {result.message}"
    assert result.reason.value == "name_constraints_violation", result.message
    assert result.failing_certificate is not None and result.failing_certificate.index == 0


@pytest.mark.parametrize("critical", [True, False], ids=["critical", "non-critical"])
def test_dns_permitted_and_excluded(sm2_pki: Pki, critical: bool) -> None:
    """Attack: a constrained bank sub-CA issues a certificate for a host outside the
    bank's domain (or inside an excluded one).  Critical constraints made every
    certificate fail as 'unsupported'; non-critical ones were ignored: evil.example
    validated OK."""
    nc = _nc([("dns_name", "bank.example")], [("dns_name", "test.bank.example")])
    ca = _constrained_ca(sm2_pki, nc, critical)
    _ok(ca, _leaf(ca, "CN=www,O=Bank,C=CN", [("dns_name", "www.bank.example")]))
    _ok(ca, _leaf(ca, "CN=apex,O=Bank,C=CN", [("dns_name", "BANK.example")]))
    _violation(ca, _leaf(ca, "CN=evil,O=Bank,C=CN", [("dns_name", "evil.example")]))
    _violation(ca, _leaf(ca, "CN=suffix,O=Bank,C=CN", [("dns_name", "notbank.example")]))
    _violation(ca, _leaf(ca, "CN=t,O=Bank,C=CN", [("dns_name", "a.test.bank.example")]))
    _violation(
        ca,
        _leaf(ca, "CN=2,O=Bank,C=CN", [("dns_name", "www.bank.example"), ("dns_name", "x.org")]),
    )


def test_directory_name_permitted_and_excluded(sm2_pki: Pki) -> None:
    """Attack: the sub-CA for O=Bank issues a certificate naming another organisation."""
    nc = _nc([("directory_name", "O=Bank,C=CN")], [("directory_name", "OU=Test,O=Bank,C=CN")])
    ca = _constrained_ca(sm2_pki, nc, critical=False)
    _ok(ca, _leaf(ca, "CN=Alice,O=Bank,C=CN"))
    _ok(ca, _leaf(ca, "CN=Bob,O=  BANK ,C=cn"))  # RFC 4518-style matching
    _violation(ca, _leaf(ca, "CN=Mallory,O=Other Bank,C=CN"))
    _violation(ca, _leaf(ca, "CN=Mallory,C=CN"))
    _violation(ca, _leaf(ca, "CN=Tess,OU=Test,O=Bank,C=CN"))
    # a directoryName in the SAN is checked too
    _violation(
        ca,
        _leaf(ca, "CN=Carol,O=Bank,C=CN", [("directory_name", "CN=Carol,O=Evil,C=CN")]),
    )


def test_rfc822_forms(sm2_pki: Pki) -> None:
    """Mailbox, host and '.domain' forms; an emailAddress in the subject DN counts too."""
    nc = _nc(
        [("rfc822_name", "bank.example"), ("rfc822_name", ".branch.example")],
        [("rfc822_name", "ceo@bank.example")],
    )
    ca = _constrained_ca(sm2_pki, nc, critical=False)
    _ok(ca, _leaf(ca, "CN=a,O=Bank,C=CN", [("rfc822_name", "alice@BANK.example")]))
    _ok(ca, _leaf(ca, "CN=b,O=Bank,C=CN", [("rfc822_name", "bob@sh.branch.example")]))
    _violation(ca, _leaf(ca, "CN=c,O=Bank,C=CN", [("rfc822_name", "carol@branch.example")]))
    _violation(ca, _leaf(ca, "CN=d,O=Bank,C=CN", [("rfc822_name", "dave@sub.bank.example")]))
    _violation(ca, _leaf(ca, "CN=e,O=Bank,C=CN", [("rfc822_name", "ceo@bank.example")]))
    _violation(ca, _leaf(ca, "CN=f,EMAILADDRESS=f@evil.example,O=Bank,C=CN"))


def test_ip_address_ranges(sm2_pki: Pki) -> None:
    nc = _nc(
        [("ip_address", "10.0.0.0/8"), ("ip_address", "fd00::/8")], [("ip_address", "10.9.0.0/16")]
    )
    ca = _constrained_ca(sm2_pki, nc, critical=False)
    _ok(ca, _leaf(ca, "CN=a,O=Bank,C=CN", [("ip_address", "10.1.2.3")]))
    _ok(ca, _leaf(ca, "CN=b,O=Bank,C=CN", [("ip_address", "fd12::1")]))
    _violation(ca, _leaf(ca, "CN=c,O=Bank,C=CN", [("ip_address", "192.168.1.1")]))
    _violation(ca, _leaf(ca, "CN=d,O=Bank,C=CN", [("ip_address", "10.9.8.7")]))
    _violation(ca, _leaf(ca, "CN=e,O=Bank,C=CN", [("ip_address", "2001:db8::1")]))


def test_constraints_of_every_ca_above_apply(sm2_pki: Pki) -> None:
    """Two constrained CAs in a row: a name must satisfy both (intersection)."""
    outer = _constrained_ca(sm2_pki, _nc([("dns_name", "bank.example")]), critical=True)
    key = sm2.generate_private_key()
    inner_cert = forge(
        outer,
        "CN=Inner CA,O=Bank,C=CN",
        is_ca=True,
        key=key,
        add=(("name_constraints", True, _nc([("dns_name", "example")])),),
    )
    inner = x509.CertificateAuthority(inner_cert, key, (outer.certificate, *outer.chain))
    leaf = _leaf(inner, "CN=x,O=Bank,C=CN", [("dns_name", "other.example")])
    result = x509.validate_chain(leaf, [inner_cert, outer.certificate], sm2_pki.roots)
    assert result.reason.value == "name_constraints_violation", result.message
    leaf = _leaf(inner, "CN=y,O=Bank,C=CN", [("dns_name", "www.bank.example")])
    assert x509.validate_chain(leaf, [inner_cert, outer.certificate], sm2_pki.roots).valid


def test_unsupported_name_form_constraint_fails_closed(sm2_pki: Pki) -> None:
    """A URI constraint is not implemented: a certificate with a URI name under it is
    refused (RFC 5280: process the constraint or reject), one without is accepted."""
    ca = _constrained_ca(sm2_pki, _nc([("uniform_resource_identifier", ".bank.example")]))
    _ok(ca, _leaf(ca, "CN=a,O=Bank,C=CN", [("dns_name", "a.bank.example")]))
    leaf = _leaf(
        ca, "CN=b,O=Bank,C=CN", [("uniform_resource_identifier", "https://b.bank.example/")]
    )
    result = _result(ca, leaf)
    assert not result.valid and result.reason.value == "unsupported_critical_extension"


def test_name_constraints_on_a_leaf_or_empty_are_profile_violations(sm2_pki: Pki) -> None:
    leaf = forge(
        sm2_pki.sub, add=(("name_constraints", True, _nc([("dns_name", "bank.example")])),)
    )
    result = x509.validate_chain(leaf, sm2_pki.intermediates, sm2_pki.roots)
    assert result.reason.value == "profile_violation", result.message
    ca = _constrained_ca(sm2_pki, a_x509.NameConstraints.load(b"\x30\x00"))
    result = _result(ca, _leaf(ca, "CN=a,O=Bank,C=CN"))
    assert result.reason.value == "profile_violation", result.message
    assert result.failing_certificate is not None and result.failing_certificate.index == 1


_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(labels=st.lists(_LABEL, min_size=1, max_size=4))
def test_property_only_names_inside_the_permitted_subtree_validate(
    sm2_pki: Pki, labels: list[str]
) -> None:
    """Security invariant: under a permitted dNSName subtree, a leaf validates exactly
    when its name equals the base or ends with '.' + base."""
    ca = _CA_CACHE.setdefault(
        "ca", _constrained_ca(sm2_pki, _nc([("dns_name", "bank.example")]), critical=True)
    )
    name = ".".join(labels)
    leaf = _leaf(ca, "CN=h,O=Bank,C=CN", [("dns_name", name)])
    inside = name == "bank.example" or name.endswith(".bank.example")
    assert _result(ca, leaf).valid is inside
    leaf = _leaf(ca, "CN=h,O=Bank,C=CN", [("dns_name", name + ".bank.example")])
    assert _result(ca, leaf).valid


_CA_CACHE: dict[str, x509.CertificateAuthority] = {}
