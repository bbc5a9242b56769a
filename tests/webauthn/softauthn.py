"""A software WebAuthn authenticator *and* browser for the server tests.

This is a fake, on purpose and only here: it stands in for the browser plus the
authenticator so the server's checks can be driven one by one (a wrong origin, a
missing UV flag, a counter that goes back), which a real browser never lets a test
do.  The real parts are tested elsewhere: the software token's CTAP2 applet driven by
python-fido2 over pcscd, and Chromium's virtual authenticator against the bank app.

Everything it sends is real WebAuthn data built with python-fido2's own client-side
pieces: ``DefaultClientDataCollector`` collects clientDataJSON from the options as a
browser does (and refuses an RP ID the origin may not use), and ``AuthenticatorData``,
``AttestedCredentialData``, ``AttestationObject``, ``RegistrationResponse`` and
``AuthenticationResponse`` encode authenticatorData, the attestation object and the
JSON of ``credential.toJSON()``.  Keys are P-256 keys from ``cryptography``; a
``packed`` attestation is signed by an attestation certificate made in the test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fido2.client import DefaultClientDataCollector
from fido2.cose import ES256
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    RegistrationResponse,
)

FLAG = AuthenticatorData.FLAG
AAGUID = bytes.fromhex("e6d1a3f2b7c84e0f9a1d2c3b4a5f6e70")
OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ebank-auth tests"),
    ]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    signing_key: Any,
    *,
    ca: bool,
    extra: list[x509.ExtensionType] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for ext in extra or []:
        b = b.add_extension(ext, critical=False)
    return b.sign(signing_key, hashes.SHA256())


@dataclass
class AttestationCA:
    """A root CA and one ``packed`` attestation certificate it issued (per the WebAuthn
    §8.2.1 certificate requirements: C, O, OU "Authenticator Attestation", CN, not a CA,
    the AAGUID extension)."""

    name: str = "Test Attestation Root"
    aaguid: bytes = AAGUID
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        self.root = _cert(
            _name(self.name), _name(self.name), self.root_key.public_key(), self.root_key, ca=True
        )
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        aaguid_ext = x509.UnrecognizedExtension(OID_FIDO_AAGUID, b"\x04\x10" + self.aaguid)
        self.leaf = _cert(
            _name("Test Authenticator", "Authenticator Attestation"),
            self.root.subject,
            self.leaf_key.public_key(),
            self.root_key,
            ca=False,
            extra=[aaguid_ext],
        )

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(Encoding.DER)

    @property
    def leaf_der(self) -> bytes:
        return self.leaf.public_bytes(Encoding.DER)


@dataclass
class _Cred:
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    counter: int


class SoftAuthenticator:
    """Browser + authenticator in one.  ``attestation``: "none", "self" (packed without a
    certificate) or "packed" (needs ``ca``).  ``uv``: whether it verifies the user."""

    def __init__(
        self,
        origin: str,
        *,
        attestation: str = "none",
        ca: AttestationCA | None = None,
        uv: bool = True,
        backup_eligible: bool = False,
        aaguid: bytes = AAGUID,
        counter_step: int = 1,
    ) -> None:
        self.origin = origin
        self.attestation = attestation
        self.ca = ca
        self.uv = uv
        self.backup_eligible = backup_eligible
        self.aaguid = aaguid
        self.counter_step = counter_step
        self.creds: dict[bytes, _Cred] = {}

    # ------------------------------------------------------------------ helpers
    def _client_data(self, options: Any, origin: str | None, **over: Any) -> CollectedClientData:
        if origin is None and not over:
            # what a browser at self.origin does (python-fido2's client-side collector)
            client_data, _ = DefaultClientDataCollector(self.origin).collect_client_data(options)
            return client_data
        kind = (
            CollectedClientData.TYPE.CREATE
            if isinstance(options, PublicKeyCredentialCreationOptions)
            else CollectedClientData.TYPE.GET
        )
        return CollectedClientData.create(
            type=over.pop("type", kind),
            challenge=over.pop("challenge", options.challenge),
            origin=origin or self.origin,
            **over,
        )

    def _flags(self, uv: bool | None, up: bool = True) -> AuthenticatorData.FLAG:
        f = FLAG(0)
        if up:
            f |= FLAG.UP
        if self.uv if uv is None else uv:
            f |= FLAG.UV
        if self.backup_eligible:
            f |= FLAG.BE
        return f

    # ------------------------------------------------------------------ ceremonies
    def create(
        self,
        options_json: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
        up: bool = True,
        client: dict[str, Any] | None = None,
        attestation: str | None = None,
        counter: int = 0,
    ) -> dict[str, Any]:
        """navigator.credentials.create(): returns credential.toJSON()."""
        options = PublicKeyCredentialCreationOptions.from_dict(options_json)
        client_data = self._client_data(options, origin, **(client or {}))
        rp = rp_id or options.rp.id
        key = ec.generate_private_key(ec.SECP256R1())
        cred_id = os.urandom(32)
        cose = ES256.from_cryptography_key(key.public_key())
        auth_data = AuthenticatorData.create(
            sha256(rp.encode()).digest(),
            self._flags(uv, up) | FLAG.AT,
            counter,
            AttestedCredentialData.create(self.aaguid, cred_id, cose),
        )
        fmt = attestation or self.attestation
        to_sign = bytes(auth_data) + client_data.hash
        if fmt == "none":
            stmt: dict[str, Any] = {}
        elif fmt == "self":
            fmt, stmt = "packed", {"alg": -7, "sig": key.sign(to_sign, ec.ECDSA(hashes.SHA256()))}
        elif fmt == "packed":
            assert self.ca is not None
            sig = self.ca.leaf_key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
            stmt = {"alg": -7, "sig": sig, "x5c": [self.ca.leaf_der]}
        else:
            raise ValueError(fmt)
        att = AttestationObject.create(fmt, auth_data, stmt)
        self.creds[cred_id] = _Cred(key, rp, options.user.id, counter)
        response = RegistrationResponse(
            raw_id=cred_id,
            response=AuthenticatorAttestationResponse(
                client_data=client_data, attestation_object=att
            ),
        )
        out = json.loads(json.dumps(dict(response)))
        out["response"]["transports"] = ["usb", "made-up"]
        return out

    def get(
        self,
        options_json: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
        up: bool = True,
        counter: int | None = None,
        credential_id: bytes | None = None,
        client: dict[str, Any] | None = None,
        user_handle: bytes | bool | None = True,
        backup_eligible: bool | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get(): returns credential.toJSON().  Signs with the first
        allowed credential it holds (or ``credential_id``); the counter moves by
        ``counter_step`` unless ``counter`` is given."""
        options = PublicKeyCredentialRequestOptions.from_dict(options_json)
        client_data = self._client_data(options, origin, **(client or {}))
        if credential_id is None:
            allowed = [d.id for d in options.allow_credentials or []] or list(self.creds)
            credential_id = next(c for c in allowed if c in self.creds)
        cred = self.creds[credential_id]
        cred.counter = cred.counter + self.counter_step if counter is None else counter
        flags = self._flags(uv, up)
        if backup_eligible is not None:
            flags = (flags | FLAG.BE) if backup_eligible else (flags & ~FLAG.BE)
        auth_data = AuthenticatorData.create(
            sha256((rp_id or cred.rp_id).encode()).digest(), flags, cred.counter
        )
        sig = cred.key.sign(bytes(auth_data) + client_data.hash, ec.ECDSA(hashes.SHA256()))
        handle = cred.user_handle if user_handle is True else (user_handle or None)
        response = AuthenticationResponse(
            raw_id=credential_id,
            response=AuthenticatorAssertionResponse(
                client_data=client_data,
                authenticator_data=auth_data,
                signature=sig,
                user_handle=handle,
            ),
        )
        return json.loads(json.dumps(dict(response)))


def mds_blob(
    entries: list[dict[str, Any]], signer_key: rsa.RSAPrivateKey, chain: list[bytes]
) -> bytes:
    """A FIDO MDS3 blob (a JWT, RS256 as the FIDO Alliance signs it) over ``entries``."""
    import base64

    def b64u(b: bytes) -> bytes:
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(c).decode() for c in chain]}
    payload = {
        "legalHeader": "test metadata, not for production",
        "no": 1,
        "nextUpdate": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
        "entries": entries,
    }
    message = b64u(json.dumps(header).encode()) + b"." + b64u(json.dumps(payload).encode())
    from cryptography.hazmat.primitives.asymmetric import padding

    sig = signer_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return message + b"." + b64u(sig)


def mds_entry(ca: AttestationCA, *, status: str = "FIDO_CERTIFIED") -> dict[str, Any]:
    """A metadata entry for ``ca``'s authenticator model."""
    import base64

    aaguid = ca.aaguid.hex()
    aaguid = f"{aaguid[:8]}-{aaguid[8:12]}-{aaguid[12:16]}-{aaguid[16:20]}-{aaguid[20:]}"
    return {
        "aaguid": aaguid,
        "statusReports": [{"status": status, "effectiveDate": "2024-01-01"}],
        "timeOfLastStatusChange": "2024-01-01",
        "metadataStatement": {
            "description": "ebank-auth test authenticator",
            "aaguid": aaguid,
            "authenticatorVersion": 1,
            "schema": 3,
            "upv": [{"major": 1, "minor": 1}],
            "attestationTypes": ["basic_full"],
            "userVerificationDetails": [[{"userVerificationMethod": "presence_internal"}]],
            "keyProtection": ["hardware"],
            "matcherProtection": ["on_chip"],
            "attachmentHint": ["external"],
            "tcDisplay": [],
            "attestationRootCertificates": [base64.b64encode(ca.root_der).decode()],
        },
    }


def rsa_ca(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, _cert(_name(name), _name(name), key.public_key(), key, ca=True)


def rsa_leaf(
    name: str, issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, _cert(_name(name), issuer.subject, key.public_key(), issuer_key, ca=False)
