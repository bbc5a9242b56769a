"""RFC 5280 profile checks and key strength in chain validation (issue 11 items 16, 17).

Each test builds a deliberately bad certificate with ``pki.helpers.forge`` (our CA API,
then an edited and re-signed TBS) or ``cryptography``'s builder, and checks that
``validate_chain`` refuses it with the documented reason and index.  The docstrings say
which attack each one encodes: before these checks, every one of them validated "OK".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from asn1crypto import crl as a_crl
from asn1crypto import x509 as a_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.hazmat.primitives.asymmetric import rsa as c_rsa

from ebank_auth.crypto import sm2, x509
from ebank_auth.crypto._asn1 import algorithm_identifier
from ebank_auth.crypto.keys import default_signature_algorithm
from ebank_auth.crypto.x509 import KeyUsage
from pki.helpers import Pki, forge

KEY = sm2.generate_private_key()


def _refused(result: x509.ValidationResult, reason: str, index: int) -> None:
    assert not result.valid, f"accepted: {result.message}"
    assert result.reason.value == reason, result.message
    assert result.failing_certificate is not None
    assert result.failing_certificate.index == index, result.message


def _validate(pki: Pki, leaf: x509.Certificate, *extra: x509.Certificate, **kw: Any) -> Any:
    return x509.validate_chain(leaf, [*extra, *pki.intermediates], pki.roots, **kw)


def _spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _sub_ca(pki: Pki, **kw: Any) -> x509.CertificateAuthority:
    """A second-level CA forged under the root (the root allows any path length)."""
    key = sm2.generate_private_key()
    kw.setdefault("subject", "CN=Forged CA,O=ebank-auth,C=CN")
    cert = forge(pki.root, kw.pop("subject"), is_ca=True, key=key, **kw)
    return x509.CertificateAuthority(cert, key, (pki.root.certificate,))


def _chain(ca: x509.CertificateAuthority, leaf: x509.Certificate) -> x509.ValidationResult:
    return x509.validate_chain(leaf, [ca.certificate], ca.chain[-1:])


# ----------------------------------------------------------------- item 16: leaf keys


@pytest.mark.parametrize(
    "make",
    [
        lambda: c_rsa.generate_private_key(65537, 1024).public_key(),
        lambda: dsa.generate_private_key(2048).public_key(),
        lambda: ec.generate_private_key(ec.SECP192R1()).public_key(),
    ],
    ids=["rsa1024", "dsa", "p192"],
)
def test_weak_leaf_key_is_refused(sm2_pki: Pki, make: Any) -> None:
    """Attack: a CA (mis)issues a certificate for an RSA-1024, DSA or P-192 key; the
    validator never looked at the leaf's own key, so a signature made with a key that
    can be factored or is outside UK-2/PS-4 was backed by a path that verified OK."""
    leaf = forge(sm2_pki.sub, spki_der=_spki(make()))
    _refused(_validate(sm2_pki, leaf), "weak_key", 0)


def test_leaf_with_an_off_curve_sm2_point_is_refused(sm2_pki: Pki) -> None:
    """Attack: an SM2 leaf whose point is not on the curve (invalid-curve material)."""
    good = sm2_pki.leaf.spki_der
    bad = good[:-1] + bytes([good[-1] ^ 1])
    leaf = forge(sm2_pki.sub, spki_der=bad)
    _refused(_validate(sm2_pki, leaf), "invalid_key", 0)


# ----------------------------------------------------------------- item 17: profile


def test_missing_or_critical_authority_key_identifier(sm2_pki: Pki) -> None:
    """Attack surface: without an AKI, path building cannot tell same-name CAs apart; a
    critical AKI is forbidden (RFC 5280 4.2.1.1).  Both were accepted."""
    leaf = forge(sm2_pki.sub, drop=("authority_key_identifier",))
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)
    aki = {"key_identifier": sm2_pki.sub.certificate.subject_key_identifier}
    leaf = forge(
        sm2_pki.sub,
        drop=("authority_key_identifier",),
        add=(("authority_key_identifier", True, aki),),
    )
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


def test_ca_without_or_with_critical_subject_key_identifier(sm2_pki: Pki) -> None:
    """A CA certificate must carry a non-critical SKI (RFC 5280 4.2.1.2)."""
    ca = _sub_ca(sm2_pki, drop=("key_identifier",))
    _refused(_chain(ca, ca.issue("CN=L1", KEY.public_key())), "profile_violation", 1)
    leaf = forge(
        sm2_pki.sub, drop=("key_identifier",), add=(("key_identifier", True, b"\x01" * 20),)
    )
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


@pytest.mark.parametrize("serial", [0, -5, 1 << 160], ids=["zero", "negative", "21-octets"])
def test_bad_serial_numbers(sm2_pki: Pki, serial: int) -> None:
    """Serials must be positive and at most 20 octets (RFC 5280 4.1.2.2); a zero or
    negative serial collides with CRL bookkeeping, a huge one with every database."""
    leaf = forge(sm2_pki.sub, serial=serial)
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


def test_twenty_octet_serial_is_fine(sm2_pki: Pki) -> None:
    leaf = forge(sm2_pki.sub, serial=(1 << 159) - 1)
    assert _validate(sm2_pki, leaf).valid


def test_empty_extended_key_usage(sm2_pki: Pki) -> None:
    """An empty extendedKeyUsage (SIZE 1..MAX) was read as "no EKU restriction"."""
    leaf = forge(sm2_pki.sub, add=(("extended_key_usage", False, a_x509.ExtKeyUsageSyntax([])),))
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


@pytest.mark.parametrize(
    "name",
    [
        ("dns_name", "exa mple.com"),
        ("dns_name", ""),
        ("dns_name", "a..b.example"),
        ("dns_name", "-bad.example"),
        ("rfc822_name", "no-at-sign.example"),
        ("rfc822_name", "a@"),
        ("uniform_resource_identifier", "no-scheme"),
        ("ip_address", b"\x0a\x00\x00"),
    ],
    ids=lambda n: f"{n[0]}={n[1]!r}",
)
def test_subject_alt_name_syntax(sm2_pki: Pki, name: tuple[str, object]) -> None:
    """Malformed SAN entries dodge name matching and name constraints (a space or an
    empty label never equals a constrained name); RFC 5280 4.2.1.6 forbids them."""
    kind, value = name
    tag = {"dns_name": 0x82, "rfc822_name": 0x81, "uniform_resource_identifier": 0x86}.get(
        kind, 0x87
    )
    raw = value if isinstance(value, bytes) else str(value).encode("ascii")
    gn = a_x509.GeneralName.load(bytes([tag, len(raw)]) + raw)  # raw: no encoder fixes it
    leaf = forge(sm2_pki.sub, add=(("subject_alt_name", False, a_x509.GeneralNames([gn])),))
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


def test_empty_san_sequence(sm2_pki: Pki) -> None:
    leaf = forge(sm2_pki.sub, add=(("subject_alt_name", False, a_x509.GeneralNames([])),))
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


def test_empty_subject_needs_a_critical_san(sm2_pki: Pki) -> None:
    """An empty subject with no SAN, or with a non-critical SAN (RFC 5280 4.2.1.6), names
    nobody: the certificate could be presented as anyone's."""
    san = a_x509.GeneralNames([a_x509.GeneralName(name="rfc822_name", value="a@bank.example")])
    _refused(_validate(sm2_pki, forge(sm2_pki.sub, None)), "profile_violation", 0)
    leaf = forge(sm2_pki.sub, None, add=(("subject_alt_name", False, san),))
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)
    leaf = forge(sm2_pki.sub, None, add=(("subject_alt_name", True, san),))
    assert _validate(sm2_pki, leaf).valid


def test_ca_with_empty_subject(sm2_pki: Pki) -> None:
    """A CA must have a non-empty subject (RFC 5280 4.1.2.6): its name is what chains."""
    san = a_x509.GeneralNames([a_x509.GeneralName(name="dns_name", value="ca.bank.example")])
    ca = _sub_ca(sm2_pki, subject=None, add=(("subject_alt_name", True, san),))
    _refused(_chain(ca, ca.issue("CN=L2", KEY.public_key())), "profile_violation", 1)


def test_key_cert_sign_on_a_leaf_without_ca(sm2_pki: Pki) -> None:
    """keyCertSign without cA=TRUE (RFC 5280 4.2.1.3) marks a key that may sign
    certificates but is no CA: a confused verifier could accept its children."""
    leaf = forge(sm2_pki.sub, key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_CERT_SIGN})
    _refused(_validate(sm2_pki, leaf), "profile_violation", 0)


def test_ca_basic_constraints_must_be_critical(sm2_pki: Pki) -> None:
    """A verifier that ignores non-critical extensions would see an unconstrained key."""
    ca = _sub_ca(
        sm2_pki,
        drop=("basic_constraints",),
        add=(("basic_constraints", False, {"ca": True}),),
    )
    _refused(_chain(ca, ca.issue("CN=L3", KEY.public_key())), "profile_violation", 1)


def test_critical_certificate_policies_are_refused(sm2_pki: Pki) -> None:
    """docs/pki.md said critical certificatePolicies are refused, but the code treated
    them as understood: a policy the relying party must enforce was silently ignored."""
    policies = a_x509.CertificatePolicies([{"policy_identifier": "1.2.156.112562.2.1.1.1"}])
    leaf = forge(sm2_pki.sub, add=(("certificate_policies", True, policies),))
    _refused(_validate(sm2_pki, leaf), "unsupported_critical_extension", 0)
    leaf = forge(sm2_pki.sub, add=(("certificate_policies", False, policies),))
    assert _validate(sm2_pki, leaf).valid


def test_self_issued_certificates_do_not_count_toward_path_length(sm2_pki: Pki) -> None:
    """A key rollover (self-issued certificate) under a pathLen:0 CA is allowed; a real
    intermediate there is not (RFC 5280 6.1.4 (l))."""
    from ebank_auth.crypto.x509.ca import CA_KEY_USAGE

    new_key = sm2.generate_private_key()
    rollover = x509.build_certificate(
        subject=sm2_pki.sub.certificate.asn1["tbs_certificate"]["subject"],
        public_key=new_key.public_key(),
        issuer_key=sm2_pki.sub.key,
        issuer=sm2_pki.sub.certificate,
        is_ca=True,
        key_usage=CA_KEY_USAGE,
    )
    assert rollover.is_self_issued
    leaf = x509.CertificateAuthority(rollover, new_key).issue("CN=After Rollover", KEY)
    result = x509.validate_chain(leaf, [rollover, sm2_pki.sub.certificate], sm2_pki.roots)
    assert result.valid, result.message
    assert result.chain[1] == rollover
    deeper = sm2_pki.sub.create_intermediate("CN=Too Deep,O=ebank-auth,C=CN", new_key)
    leaf = deeper.issue("CN=Below", KEY)
    result = x509.validate_chain(leaf, [deeper.certificate, sm2_pki.sub.certificate], sm2_pki.roots)
    _refused(result, "path_too_long", 1)


# ----------------------------------------------------------------- CRLs


def _forged_crl(pki: Pki, extensions: list[dict[str, Any]]) -> bytes:
    crl = pki.sub.issue_crl([])
    tbs = a_crl.TbsCertList.load(crl.tbs_der)
    tbs["crl_extensions"] = extensions
    alg = default_signature_algorithm(pki.sub.key)
    tbs_der = tbs.dump(force=True)
    return bytes(
        a_crl.CertificateList(
            {
                "tbs_cert_list": a_crl.TbsCertList.load(tbs_der),
                "signature_algorithm": algorithm_identifier(alg),
                "signature": pki.sub.key.sign_with(alg, tbs_der),
            }
        ).dump()
    )


def test_crl_number_missing_or_critical(sm2_pki: Pki) -> None:
    """A CRL without a cRLNumber cannot be ordered (an old CRL can be replayed as if it
    were the latest); the number MUST be present and non-critical (RFC 5280 5.2.3)."""
    aki = {
        "extn_id": "authority_key_identifier",
        "critical": False,
        "extn_value": {"key_identifier": sm2_pki.sub.certificate.subject_key_identifier},
    }
    for exts in (
        [aki],
        [{"extn_id": "crl_number", "critical": True, "extn_value": 7}, aki],
    ):
        crl = _forged_crl(sm2_pki, exts)
        _refused(_validate(sm2_pki, sm2_pki.leaf, crls=[crl]), "profile_violation", 0)
    good = _forged_crl(
        sm2_pki, [{"extn_id": "crl_number", "critical": False, "extn_value": 7}, aki]
    )
    assert _validate(sm2_pki, sm2_pki.leaf, crls=[good]).valid


def test_time_is_checked_after_profile(sm2_pki: Pki) -> None:
    """Control: the new checks do not mask the older reasons."""
    old = sm2_pki.sub.issue(
        "CN=old", KEY.public_key(), not_before=dt.datetime(2020, 1, 1), valid_days=10
    )
    _refused(_validate(sm2_pki, old), "expired", 0)
