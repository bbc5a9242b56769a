"""PasskeyServer: registration and sign-in against the test's software authenticator.

The authenticator is a fake (see softauthn.py for why, and where the real ones are
tested); the data it sends is real WebAuthn made with python-fido2's client pieces.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ebank_auth.audit import AuditLog
from ebank_auth.errors import (
    AttestationRejected,
    CeremonyInvalid,
    ConfigurationError,
    PasskeyAlreadyRegistered,
    PasskeyCloneSuspected,
    PasskeyRejected,
)
from ebank_auth.policy import Factor
from ebank_auth.store import MemoryStore
from ebank_auth.webauthn import (
    AttestationPolicy,
    CloneEvent,
    PasskeyCredential,
    PasskeyServer,
    RejectReason,
    RelyingParty,
    UserVerification,
)
from plugins.store_backends import FakeClock
from webauthn.conftest import ORIGIN, RP
from webauthn.softauthn import (
    AttestationCA,
    SoftAuthenticator,
    mds_blob,
    mds_entry,
    rsa_ca,
    rsa_leaf,
)


def register(
    server: PasskeyServer, auth: SoftAuthenticator, user: str = "c1", **kw: Any
) -> PasskeyCredential:
    ceremony = server.register_begin(user, name=f"{user}@bank")
    return server.register_complete(ceremony.handle, auth.create(ceremony.options, **kw))


def reason(exc: pytest.ExceptionInfo[PasskeyRejected]) -> RejectReason:
    assert isinstance(exc.value.reason, RejectReason)
    return exc.value.reason


def events(audit: AuditLog, name: str) -> list[dict[str, Any]]:
    return [r for r in audit.records() if r["event"] == name]


# ---------------------------------------------------------------------- happy paths


def test_register_then_sign_in(server: PasskeyServer, authenticator: SoftAuthenticator) -> None:
    ceremony = server.register_begin("c1", name="c1@bank", display_name="Customer One")
    options = ceremony.options
    assert json.loads(json.dumps(options)) == options  # plain JSON for the browser
    assert options["rp"] == {"name": "Example Bank", "id": "bank.example"}
    assert options["user"]["name"] == "c1@bank"
    assert "c1" not in options["user"]["id"]  # a random handle, never the customer id
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["attestation"] == "none"
    assert options["timeout"] == 300_000

    cred = server.register_complete(ceremony.handle, authenticator.create(options))
    assert cred.user == "c1"
    assert cred.sign_count == 0
    assert cred.transports == ("usb",)  # unknown transports are dropped
    assert cred.aaguid_text == "e6d1a3f2-b7c8-4e0f-9a1d-2c3b4a5f6e70"
    assert cred.user_verified and not cred.backup_eligible and not cred.backed_up
    assert server.credentials("c1") == [cred]

    login = server.authenticate_begin("c1")
    assert [c["id"] for c in login.options["allowCredentials"]] == [cred.id]
    assert login.options["rpId"] == "bank.example"
    result = server.authenticate_complete(login.handle, authenticator.get(login.options))
    assert result.user == "c1"
    assert result.user_verified
    assert result.factor is Factor.PASSKEY_UV
    assert result.credential.sign_count == 1
    assert result.credential.last_used_at is not None


def test_sign_in_without_uv_is_the_plain_passkey_factor(server: PasskeyServer) -> None:
    auth = SoftAuthenticator(ORIGIN, uv=False)
    register(server, auth)
    login = server.authenticate_begin("c1")
    result = server.authenticate_complete(login.handle, auth.get(login.options))
    assert result.factor is Factor.PASSKEY
    assert result.factors == frozenset({Factor.PASSKEY})


def test_usernameless_sign_in_finds_the_customer_by_user_handle(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator, "c7")
    login = server.authenticate_begin()
    assert "allowCredentials" not in login.options
    assert server.authenticate_complete(login.handle, authenticator.get(login.options)).user == "c7"

    login = server.authenticate_begin()
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(
            login.handle, authenticator.get(login.options, user_handle=None)
        )
    assert reason(exc) is RejectReason.USER_HANDLE


def test_audit_records_registration_and_sign_in(
    server: PasskeyServer, authenticator: SoftAuthenticator, audit: AuditLog
) -> None:
    cred = register(server, authenticator)
    login = server.authenticate_begin("c1")
    server.authenticate_complete(login.handle, authenticator.get(login.options))
    (reg,) = events(audit, "passkey_registered")
    assert reg["user"] == "c1" and reg["outcome"] == "ok"
    assert reg["details"]["credential"] == cred.id
    (ok,) = events(audit, "passkey_login")
    assert ok["outcome"] == "ok" and ok["details"]["uv"] == "true"


# ---------------------------------------------------------------------- origin and RP ID


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://bank.example.evil.example",
        "https://www.bank.example",  # a subdomain that is not configured
        "http://bank.example",
        "https://bank.example:8443",
        "https://BANK.example",
        "https://bank.example/",
    ],
)
def test_origin_is_checked_exactly(
    server: PasskeyServer, authenticator: SoftAuthenticator, origin: str
) -> None:
    ceremony = server.register_begin("c1", name="c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.register_complete(
            ceremony.handle, authenticator.create(ceremony.options, origin=origin)
        )
    assert reason(exc) is RejectReason.ORIGIN
    assert server.credentials("c1") == []

    register(server, authenticator)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(login.handle, authenticator.get(login.options, origin=origin))
    assert reason(exc) is RejectReason.ORIGIN
    assert server.credentials("c1")[0].sign_count == 0  # nothing changed


def test_cross_origin_frame_is_refused(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    response = authenticator.get(login.options, origin=ORIGIN, client={"crossOrigin": True})
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(login.handle, response)
    assert reason(exc) is RejectReason.ORIGIN


def test_several_allowed_origins(store: MemoryStore) -> None:
    rp = RelyingParty("bank.example", "Bank", ("https://bank.example", "https://m.bank.example"))
    server = PasskeyServer(store, rp)
    register(server, SoftAuthenticator("https://bank.example"))
    mobile = SoftAuthenticator("https://m.bank.example")
    register(server, mobile, "c2")
    login = server.authenticate_begin("c2")
    assert server.authenticate_complete(login.handle, mobile.get(login.options)).user == "c2"


def test_wrong_rp_id_is_refused(server: PasskeyServer, authenticator: SoftAuthenticator) -> None:
    ceremony = server.register_begin("c1", name="c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.register_complete(
            ceremony.handle, authenticator.create(ceremony.options, rp_id="evil.example")
        )
    assert reason(exc) is RejectReason.RP_ID

    register(server, authenticator)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(
            login.handle, authenticator.get(login.options, rp_id="other.example")
        )
    assert reason(exc) is RejectReason.RP_ID


@pytest.mark.parametrize(
    ("rp_id", "origins"),
    [
        ("https://bank.example", ("https://bank.example",)),  # a URL, not an RP ID
        ("bank.example", ()),
        ("bank.example", ("https://evil.example",)),
        ("bank.example", ("http://bank.example",)),  # http only for localhost
        ("bank.example", ("https://bank.example/login",)),
        ("Bank.Example", ("https://bank.example",)),
    ],
)
def test_relying_party_configuration_is_checked(rp_id: str, origins: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError):
        RelyingParty(rp_id, "Bank", origins)


def test_a_public_suffix_is_never_an_rp_id(store: MemoryStore) -> None:
    with pytest.raises(ConfigurationError, match="public suffix"):
        PasskeyServer(store, RelyingParty("github.io", "x", ("https://bank.github.io",)))


def test_localhost_over_http_for_development(store: MemoryStore) -> None:
    rp = RelyingParty("localhost", "Dev bank", ("http://localhost:5000",))
    auth = SoftAuthenticator("http://localhost:5000")
    register(PasskeyServer(store, rp), auth)


# ---------------------------------------------------------------------- user presence, verification


def test_uv_required_and_missing_is_refused(store: MemoryStore) -> None:
    server = PasskeyServer(store, RP, user_verification=UserVerification.REQUIRED)
    ceremony = server.register_begin("c1", name="c1")
    assert ceremony.options["authenticatorSelection"]["userVerification"] == "required"
    auth = SoftAuthenticator(ORIGIN, uv=False)
    with pytest.raises(PasskeyRejected) as exc:
        server.register_complete(ceremony.handle, auth.create(ceremony.options))
    assert reason(exc) is RejectReason.USER_VERIFICATION

    register(server, auth, uv=True)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(login.handle, auth.get(login.options))
    assert reason(exc) is RejectReason.USER_VERIFICATION
    login = server.authenticate_begin("c1")
    assert server.authenticate_complete(
        login.handle, auth.get(login.options, uv=True)
    ).user_verified


def test_a_call_may_ask_for_more_uv_never_less(store: MemoryStore) -> None:
    server = PasskeyServer(store, RP)  # preferred by default
    auth = SoftAuthenticator(ORIGIN, uv=False)
    register(server, auth)
    login = server.authenticate_begin("c1", user_verification=UserVerification.REQUIRED)
    assert login.options["userVerification"] == "required"
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(login.handle, auth.get(login.options))
    assert reason(exc) is RejectReason.USER_VERIFICATION

    strict = PasskeyServer(store, RP, user_verification=UserVerification.REQUIRED)
    login = strict.authenticate_begin("c1", user_verification=UserVerification.DISCOURAGED)
    assert login.options["userVerification"] == "required"


def test_user_presence_is_always_required(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(login.handle, authenticator.get(login.options, up=False))
    assert reason(exc) is RejectReason.USER_PRESENCE


# ---------------------------------------------------------------------- state consumed once


def test_a_replayed_assertion_is_refused(
    server: PasskeyServer, authenticator: SoftAuthenticator, audit: AuditLog
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    response = authenticator.get(login.options)
    server.authenticate_complete(login.handle, response)
    with pytest.raises(CeremonyInvalid):  # the same state twice
        server.authenticate_complete(login.handle, response)
    again = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected) as exc:  # the old response on a new challenge
        server.authenticate_complete(again.handle, response)
    assert reason(exc) is RejectReason.CHALLENGE
    assert [e["outcome"] for e in events(audit, "passkey_login")] == ["ok", "deny"]


def test_a_failed_complete_still_uses_up_the_state(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected):
        server.authenticate_complete(
            login.handle, authenticator.get(login.options, origin="https://x.example")
        )
    with pytest.raises(CeremonyInvalid):
        server.authenticate_complete(login.handle, authenticator.get(login.options))


def test_state_expires(
    server: PasskeyServer, authenticator: SoftAuthenticator, clock: FakeClock
) -> None:
    ceremony = server.register_begin("c1", name="c1")
    assert ceremony.expires_at == clock() + 300
    clock.advance(301)
    with pytest.raises(CeremonyInvalid):
        server.register_complete(ceremony.handle, authenticator.create(ceremony.options))


@pytest.mark.parametrize("handle", ["", "x" * 200, "no-such-handle-000000", None, 7])
def test_unknown_handles_are_refused(server: PasskeyServer, handle: Any) -> None:
    with pytest.raises(CeremonyInvalid):
        server.authenticate_complete(handle, {})


def test_a_registration_handle_does_not_sign_in(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    ceremony = server.register_begin("c1", name="c1")
    login = server.authenticate_begin("c1")
    with pytest.raises(CeremonyInvalid):
        server.authenticate_complete(ceremony.handle, authenticator.get(login.options))


# ---------------------------------------------------------------------- credentials


def test_someone_elses_passkey_is_refused(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator, "mallory")
    register(server, SoftAuthenticator(ORIGIN), "c1")
    login = server.authenticate_begin("c1")
    mallorys = next(iter(authenticator.creds))
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(
            login.handle, authenticator.get(login.options, credential_id=mallorys)
        )
    assert reason(exc) is RejectReason.UNKNOWN_CREDENTIAL


def test_a_forged_user_handle_is_refused(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin()
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(
            login.handle, authenticator.get(login.options, user_handle=b"\x01" * 32)
        )
    assert reason(exc) is RejectReason.USER_HANDLE


def test_a_bad_signature_is_refused(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    response = authenticator.get(login.options)
    other = server.authenticate_begin("c1")
    # a signature over other data (another challenge) under the right key
    response["response"]["signature"] = authenticator.get(other.options)["response"]["signature"]
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(login.handle, response)
    assert reason(exc) is RejectReason.SIGNATURE
    assert server.credentials("c1")[0].sign_count == 0


def test_backup_eligibility_may_not_change(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected) as exc:
        server.authenticate_complete(
            login.handle, authenticator.get(login.options, backup_eligible=True)
        )
    assert reason(exc) is RejectReason.BACKUP_FLAGS


def test_synced_passkey_flags_are_kept(server: PasskeyServer) -> None:
    auth = SoftAuthenticator(ORIGIN, backup_eligible=True)
    cred = register(server, auth)
    assert cred.backup_eligible


def test_a_credential_id_registers_once(
    server: PasskeyServer, authenticator: SoftAuthenticator
) -> None:
    cred = register(server, authenticator)
    with pytest.raises(PasskeyAlreadyRegistered):
        server.registry.add(cred)
    assert server.credentials("c1") == [cred]


def test_existing_passkeys_are_excluded_and_removable(
    server: PasskeyServer, authenticator: SoftAuthenticator, audit: AuditLog
) -> None:
    cred = register(server, authenticator)
    ceremony = server.register_begin("c1", name="c1")
    assert [c["id"] for c in ceremony.options["excludeCredentials"]] == [cred.id]
    assert (
        ceremony.options["user"]["id"]
        == server.register_begin("c1", name="c1").options["user"]["id"]
    )
    assert not server.remove("someone-else", cred.credential_id)
    assert server.remove("c1", cred.credential_id)
    assert server.credentials("c1") == []
    assert events(audit, "passkey_removed")[0]["details"]["credential"] == cred.id


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: {},
        lambda r: {**r, "rawId": "!!"},
        lambda r: {**r, "id": "AAAA"},
        lambda r: {**r, "response": {**r["response"], "clientDataJSON": "e30"}},
        lambda r: {**r, "response": {**r["response"], "authenticatorData": "AAAA"}},
        lambda r: {**r, "response": "x"},
        lambda r: [],
    ],
)
def test_malformed_responses_are_typed_refusals(
    server: PasskeyServer, authenticator: SoftAuthenticator, mutate: Any
) -> None:
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyRejected):
        server.authenticate_complete(login.handle, mutate(authenticator.get(login.options)))


# ---------------------------------------------------------------------- sign counter


def test_counter_regression_blocks_the_passkey_and_is_reported(
    store: MemoryStore, audit: AuditLog, authenticator: SoftAuthenticator
) -> None:
    seen: list[CloneEvent] = []
    server = PasskeyServer(store, RP, audit=audit, on_clone=seen.append)
    cred = register(server, authenticator, counter=10)
    login = server.authenticate_begin("c1")
    assert (
        server.authenticate_complete(
            login.handle, authenticator.get(login.options)
        ).credential.sign_count
        == 11
    )

    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyCloneSuspected) as exc:  # a clone still at 11
        server.authenticate_complete(login.handle, authenticator.get(login.options, counter=11))
    assert exc.value.reason is RejectReason.COUNTER_REGRESSION
    assert exc.value.credential_id == cred.credential_id
    assert seen == [CloneEvent("c1", cred.credential_id, 11, 11, RejectReason.COUNTER_REGRESSION)]
    (alert,) = events(audit, "passkey_clone_suspected")
    assert alert["details"]["presented_count"] == "11"

    stored = server.credentials("c1")[0]
    assert stored.clone_suspected and stored.sign_count == 11  # never moved back
    assert server.authenticate_begin("c1").options["allowCredentials"] == []  # not offered
    login = server.authenticate_begin()  # even a higher counter is refused now
    with pytest.raises(PasskeyCloneSuspected) as exc:
        server.authenticate_complete(login.handle, authenticator.get(login.options, counter=50))
    assert exc.value.reason is RejectReason.CREDENTIAL_BLOCKED


def test_a_failing_clone_hook_does_not_hide_the_refusal(
    store: MemoryStore, authenticator: SoftAuthenticator
) -> None:
    def hook(event: CloneEvent) -> None:
        raise RuntimeError("fraud system down")

    server = PasskeyServer(store, RP, on_clone=hook)
    register(server, authenticator, counter=5)
    login = server.authenticate_begin("c1")
    with pytest.raises(PasskeyCloneSuspected):
        server.authenticate_complete(login.handle, authenticator.get(login.options, counter=3))


def test_an_authenticator_without_a_counter_keeps_zero(server: PasskeyServer) -> None:
    auth = SoftAuthenticator(ORIGIN, counter_step=0)
    register(server, auth)
    for _ in range(3):
        login = server.authenticate_begin("c1")
        assert (
            server.authenticate_complete(
                login.handle, auth.get(login.options)
            ).credential.sign_count
            == 0
        )


# ---------------------------------------------------------------------- attestation


def test_trusted_root_accepts_packed_attestation(store: MemoryStore) -> None:
    ca = AttestationCA()
    server = PasskeyServer(store, RP, attestation=AttestationPolicy.trusting([ca.root_der]))
    auth = SoftAuthenticator(ORIGIN, attestation="packed", ca=ca)
    ceremony = server.register_begin("c1", name="c1")
    assert ceremony.options["attestation"] == "direct"
    cred = server.register_complete(ceremony.handle, auth.create(ceremony.options))
    assert cred.attestation_format == "packed"


@pytest.mark.parametrize("fmt", ["packed-other-root", "self", "none"])
def test_untrusted_attestation_is_refused(store: MemoryStore, fmt: str) -> None:
    trusted = AttestationCA("Bank Trusted Root")
    server = PasskeyServer(store, RP, attestation=AttestationPolicy.trusting([trusted.root]))
    other = AttestationCA("Unknown Vendor Root")
    auth = SoftAuthenticator(ORIGIN, attestation=fmt.split("-")[0], ca=other)
    ceremony = server.register_begin("c1", name="c1")
    with pytest.raises(AttestationRejected) as exc:
        server.register_complete(ceremony.handle, auth.create(ceremony.options))
    assert exc.value.reason is RejectReason.ATTESTATION
    assert server.credentials("c1") == []


def test_same_name_other_key_is_not_trusted(store: MemoryStore) -> None:
    trusted = AttestationCA("Vendor Root")
    impostor = AttestationCA("Vendor Root")  # same subject, another key
    server = PasskeyServer(store, RP, attestation=AttestationPolicy.trusting([trusted.root_der]))
    ceremony = server.register_begin("c1", name="c1")
    auth = SoftAuthenticator(ORIGIN, attestation="packed", ca=impostor)
    with pytest.raises(AttestationRejected):
        server.register_complete(ceremony.handle, auth.create(ceremony.options))


def _metadata(ca: AttestationCA, status: str = "FIDO_CERTIFIED") -> tuple[bytes, bytes]:
    root_key, root = rsa_ca("Test MDS Root")
    signer_key, signer = rsa_leaf("Test MDS Signer", root, root_key)
    from cryptography.hazmat.primitives.serialization import Encoding

    blob = mds_blob([mds_entry(ca, status=status)], signer_key, [signer.public_bytes(Encoding.DER)])
    return blob, root.public_bytes(Encoding.DER)


def test_offline_fido_metadata_file(store: MemoryStore, tmp_path: Any) -> None:
    ca = AttestationCA()
    blob, root = _metadata(ca)
    (tmp_path / "blob.jwt").write_bytes(blob + b"\n")
    (tmp_path / "root.der").write_bytes(root)
    policy = AttestationPolicy.from_metadata_file(tmp_path / "blob.jwt", tmp_path / "root.der")
    server = PasskeyServer(store, RP, attestation=policy)
    auth = SoftAuthenticator(ORIGIN, attestation="packed", ca=ca)
    register(server, auth)

    stranger = SoftAuthenticator(ORIGIN, attestation="packed", ca=AttestationCA("Other"))
    ceremony = server.register_begin("c2", name="c2")
    with pytest.raises(AttestationRejected):
        server.register_complete(ceremony.handle, stranger.create(ceremony.options))


def test_revoked_metadata_entry_is_refused(store: MemoryStore) -> None:
    ca = AttestationCA()
    blob, root = _metadata(ca, status="REVOKED")
    server = PasskeyServer(store, RP, attestation=AttestationPolicy.from_metadata(blob, root))
    ceremony = server.register_begin("c1", name="c1")
    auth = SoftAuthenticator(ORIGIN, attestation="packed", ca=ca)
    with pytest.raises(AttestationRejected):
        server.register_complete(ceremony.handle, auth.create(ceremony.options))


def test_metadata_signed_by_another_root_is_a_configuration_error(store: MemoryStore) -> None:
    blob, _ = _metadata(AttestationCA())
    _, wrong_root = _metadata(AttestationCA())
    with pytest.raises(ConfigurationError, match="does not verify"):
        PasskeyServer(store, RP, attestation=AttestationPolicy.from_metadata(blob, wrong_root))


def test_attestation_policy_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        AttestationPolicy.trusting([])
    with pytest.raises(ConfigurationError):
        AttestationPolicy.trusting([b"not a certificate"])
    with pytest.raises(ConfigurationError):
        AttestationPolicy(
            AttestationPolicy.trusting([AttestationCA().root]).mode, metadata_blob=b"x"
        )


# ---------------------------------------------------------------------- outer fields
@pytest.mark.parametrize(
    "field, value",
    [("id", "AAAA"), ("type", "password"), ("type", None)],
)
def test_the_outer_id_and_type_must_match_the_credential(
    server: PasskeyServer, authenticator: SoftAuthenticator, field: str, value: Any
) -> None:
    """Issue 14 follow-up (found by the bank-app work): the unsigned outer ``id`` and ``type``
    of a response were ignored, so a response naming another credential in ``id`` than in
    ``rawId`` — or not a ``public-key`` credential at all — was accepted.  Browsers never send
    that; a relaying or tampering client does.  Both ceremonies now refuse it."""
    ceremony = server.register_begin("c2", name="c2@bank", display_name="Customer Two")
    created = authenticator.create(ceremony.options)
    bad = dict(created, **{field: value})
    with pytest.raises(PasskeyRejected):
        server.register_complete(ceremony.handle, bad)
    register(server, authenticator)
    login = server.authenticate_begin("c1")
    got = authenticator.get(login.options)
    with pytest.raises(PasskeyRejected):
        server.authenticate_complete(login.handle, dict(got, **{field: value}))
