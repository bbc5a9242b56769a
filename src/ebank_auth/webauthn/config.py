"""What a passkey server is configured with: the relying party (RP ID and the exact
origins allowed), the user-verification level, and the attestation policy.

Nothing here imports ``fido2``: an app can build and check its configuration (and
read the credential registry) without the ``webauthn`` extra installed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ebank_auth.errors import ConfigurationError
from ebank_auth.policy.factors import Factor

__all__ = [
    "AttestationMode",
    "AttestationPolicy",
    "RejectReason",
    "RelyingParty",
    "ResidentKey",
    "UserVerification",
    "user_verification_for",
]

log = logging.getLogger(__name__)

# a DNS name of lowercase labels (an RP ID is a registrable domain or a suffix of the origin)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_RP_ID = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ORIGIN = re.compile(rf"(https|http)://({_LABEL}(?:\.{_LABEL})*)(?::([0-9]{{1,5}}))?")


class UserVerification(str, Enum):
    """WebAuthn ``userVerification``: whether the authenticator must check the customer
    (device PIN or biometric) besides their presence (a touch)."""

    REQUIRED = "required"
    PREFERRED = "preferred"
    DISCOURAGED = "discouraged"


class ResidentKey(str, Enum):
    """WebAuthn ``residentKey``: whether the passkey is discoverable (usernameless sign-in)."""

    REQUIRED = "required"
    PREFERRED = "preferred"
    DISCOURAGED = "discouraged"


class AttestationMode(str, Enum):
    """``none``: accept any authenticator (attestation is not asked for and ignored);
    ``trusted``: ask for attestation and accept only a ``packed`` statement whose
    certificate chains to a configured root (or to a root in FIDO metadata)."""

    NONE = "none"
    TRUSTED = "trusted"


class RejectReason(str, Enum):
    """Why a WebAuthn response was refused (:attr:`PasskeyRejected.reason`)."""

    MALFORMED = "malformed"  # not a WebAuthn credential JSON, or inconsistent data
    TYPE = "type"  # clientData.type is not webauthn.create / webauthn.get
    ORIGIN = "origin"  # not one of the configured origins (exact match), or cross-origin
    CHALLENGE = "challenge"  # not the challenge this ceremony issued
    RP_ID = "rp_id"  # authenticatorData is for another RP ID
    USER_PRESENCE = "user_presence"  # UP flag not set
    USER_VERIFICATION = "user_verification"  # UV required by policy but not done
    ALGORITHM = "algorithm"  # a public-key algorithm this server does not accept
    ATTESTATION = "attestation"  # attestation format or chain not trusted
    UNKNOWN_CREDENTIAL = "unknown_credential"  # not registered (for this customer)
    USER_HANDLE = "user_handle"  # userHandle does not belong to the credential
    SIGNATURE = "signature"  # the assertion signature does not verify
    BACKUP_FLAGS = "backup_flags"  # backup eligibility changed or state without eligibility
    COUNTER_REGRESSION = "counter_regression"  # signature counter did not increase
    CREDENTIAL_BLOCKED = "credential_blocked"  # blocked after a suspected clone


@dataclass(frozen=True)
class RelyingParty:
    """The bank as a WebAuthn relying party.

    ``id`` is the RP ID passkeys are scoped to (a domain such as ``bank.example``);
    ``origins`` are the exact origins (``https://host[:port]``) whose responses are
    accepted: each must be the RP ID or one of its subdomains.  Plain ``http`` is
    allowed only for ``localhost`` (development).  An origin in a response is
    compared as a string, exactly: no prefix, suffix or case folding.
    """

    id: str
    name: str
    origins: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or _RP_ID.fullmatch(self.id) is None:
            raise ConfigurationError(
                f"RP ID {self.id!r} is not a lowercase domain name: give the bank's domain "
                "without scheme, port or path (e.g. 'bank.example')"
            )
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError("the relying party needs a display name (e.g. the bank's)")
        origins = (self.origins,) if isinstance(self.origins, str) else tuple(self.origins)
        if not origins:
            raise ConfigurationError(
                "give at least one allowed origin (e.g. 'https://bank.example')"
            )
        for origin in origins:
            self._check_origin(origin)
        object.__setattr__(self, "origins", origins)

    def _check_origin(self, origin: object) -> None:
        m = _ORIGIN.fullmatch(origin) if isinstance(origin, str) else None
        if m is None:
            raise ConfigurationError(
                f"allowed origin {origin!r} is not an origin: write scheme://host[:port] in "
                "lowercase, without path or trailing slash (e.g. 'https://bank.example')"
            )
        scheme, host, port = m.groups()
        if host != self.id and not host.endswith("." + self.id):
            raise ConfigurationError(
                f"allowed origin {origin!r} is not on the RP ID {self.id!r}: passkeys scoped "
                "to an RP ID work only on that domain and its subdomains"
            )
        if scheme == "http" and host != "localhost":
            raise ConfigurationError(
                f"allowed origin {origin!r} uses http: browsers offer WebAuthn only on https "
                "origins (and http://localhost for development)"
            )
        if port is not None and not 1 <= int(port) <= 65535:
            raise ConfigurationError(f"allowed origin {origin!r} has an invalid port")

    def origin_allowed(self, origin: object) -> bool:
        """True only for an origin equal to one of :attr:`origins`."""
        return isinstance(origin, str) and origin in self.origins


def _der(cert: bytes | x509.Certificate, what: str) -> bytes:
    try:
        if isinstance(cert, x509.Certificate):
            return cert.public_bytes(Encoding.DER)
        if isinstance(cert, bytes):
            if cert.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_certificate(cert).public_bytes(Encoding.DER)
            x509.load_der_x509_certificate(cert)
            return cert
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not an X.509 certificate: {exc}") from None
    raise ConfigurationError(f"{what} must be a certificate (DER or PEM bytes)")


@dataclass(frozen=True)
class AttestationPolicy:
    """Which authenticators may register.

    * :meth:`none` (the default): any authenticator; attestation is ignored.
    * :meth:`trusting`: a ``packed`` attestation whose certificate chains to one of
      the given roots (DER or PEM); self attestation, ``none`` and other formats are
      refused.
    * :meth:`from_metadata` / :meth:`from_metadata_file`: the roots come from a FIDO
      Metadata Service (MDS3) blob kept as a local file, whose signature is checked
      against ``metadata_root`` (the FIDO Alliance root, or the bank's own); revoked
      entries and compromised attestation keys are refused.
    """

    mode: AttestationMode = AttestationMode.NONE
    trusted_roots: tuple[bytes, ...] = ()
    metadata_blob: bytes | None = None
    metadata_root: bytes | None = None

    def __post_init__(self) -> None:
        mode = AttestationMode(self.mode)
        object.__setattr__(self, "mode", mode)
        roots = tuple(_der(r, "a trusted attestation root") for r in self.trusted_roots)
        object.__setattr__(self, "trusted_roots", roots)
        if self.metadata_root is not None:
            object.__setattr__(
                self, "metadata_root", _der(self.metadata_root, "the metadata signing root")
            )
        if mode is AttestationMode.NONE and (roots or self.metadata_blob is not None):
            raise ConfigurationError(
                "roots or metadata were given with attestation mode 'none': use "
                "AttestationPolicy.trusting(...) or from_metadata(...)"
            )
        if mode is AttestationMode.TRUSTED:
            if not roots and self.metadata_blob is None:
                raise ConfigurationError(
                    "trusted attestation needs at least one root certificate or a FIDO "
                    "metadata blob"
                )
            if self.metadata_blob is not None and self.metadata_root is None:
                raise ConfigurationError(
                    "a FIDO metadata blob is only used with the root that signs it: give "
                    "metadata_root (an unverified blob would let anyone add authenticators)"
                )

    @classmethod
    def none(cls) -> AttestationPolicy:
        return cls()

    @classmethod
    def trusting(cls, roots: Iterable[bytes | x509.Certificate]) -> AttestationPolicy:
        return cls(AttestationMode.TRUSTED, tuple(_der(r, "a root") for r in roots))

    @classmethod
    def from_metadata(cls, blob: bytes, root: bytes | x509.Certificate) -> AttestationPolicy:
        return cls(AttestationMode.TRUSTED, (), bytes(blob), _der(root, "the metadata root"))

    @classmethod
    def from_metadata_file(cls, blob: str | Path, root: str | Path) -> AttestationPolicy:
        """Read an MDS3 blob (the JWT as downloaded) and its signing root from files."""
        try:
            data = Path(blob).read_bytes()
            root_bytes = Path(root).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the FIDO metadata: {exc}") from None
        return cls.from_metadata(data.strip(), root_bytes)


def user_verification_for(missing: Iterable[frozenset[Factor]]) -> UserVerification:
    """The ``userVerification`` to ask for, given a decision's ``missing`` clauses: REQUIRED
    when a clause names ``passkey_uv`` but not ``passkey`` (a plain passkey would not
    satisfy it), else PREFERRED."""
    for clause in missing:
        if Factor.PASSKEY_UV in clause and Factor.PASSKEY not in clause:
            return UserVerification.REQUIRED
    return UserVerification.PREFERRED
