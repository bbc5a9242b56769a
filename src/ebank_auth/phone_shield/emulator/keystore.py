"""The phone's keystore: the attested device key and the PIN-wrapped share ``d1``.

:class:`Keystore` is what the phone app needs from the platform; :class:`SoftwareKeystore`
implements it in software for tests and demos (a real app implements it with Android
KeyMint/StrongBox, whose attestation the bank checks).

**The share under the PIN.**  The share is never stored as it is, and nothing stored can tell
a right PIN from a wrong one::

    m      = argon2id(PIN, salt; t, m, p) as a 512-bit integer mod n
    stored = (d1 + m) mod n                      (no MAC, no verifier, no P1/P2)
    d1'    = (stored - m') mod n                 for the PIN typed now

A wrong PIN gives another ``d1'`` in ``[1, n-1]`` that the phone cannot tell from the right one;
it shows only when the bank's half does not complete a valid signature, and the bank counts
those attempts per device (:class:`~ebank_auth.phone_shield.PhoneShieldServer`), so guessing
the PIN is online and limited.  The phone stores only ``stored``, the salt, the KDF cost and
the joint public key.

**Biometric stand-in.**  :meth:`SoftwareKeystore.enable_biometric` keeps the PIN-derived mask
under a random key that only a successful :class:`BiometricPrompt` releases.  On a phone that
key would live in the keystore behind a biometric-gated authorisation; in software it sits in
the state file: a stand-in that shows the flow, not a protection.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ebank_auth.crypto import sm2, sm2_2p, sm4
from ebank_auth.errors import ConfigurationError, InvalidKey, PinPolicyError
from ebank_auth.phone_shield.emulator.attestation_ca import (
    DeviceClaims,
    SoftwareAttestationAuthority,
)
from ebank_auth.phone_shield.protocol import b64d, b64e

__all__ = ["BiometricPrompt", "KdfCost", "Keystore", "SoftwareKeystore"]

_N = sm2.CURVE.n


@dataclass(frozen=True)
class KdfCost:
    """argon2id cost (RFC 9106 second recommended option: t=2, m=19 MiB, p=1)."""

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


class BiometricPrompt(Protocol):
    """Shows the system's biometric prompt; True when the owner's biometric matched."""

    def authenticate(self, reason: str) -> bool: ...


class Keystore(Protocol):
    """What the phone app needs from the platform's keystore."""

    def generate_device_key(self, challenge: bytes) -> list[bytes]:
        """Make a new device key (replacing any) attested with ``challenge``; the chain."""
        ...

    def sign_with_device_key(self, data: bytes) -> bytes:
        """ECDSA P-256 / SHA-256 signature (DER) by the device key."""
        ...

    def store_share(self, share: sm2_2p.PhoneShare, pin: str) -> None: ...

    def load_share(self, pin: str) -> sm2_2p.PhoneShare: ...

    def has_share(self) -> bool: ...

    def wipe(self) -> None: ...


def _check_pin(pin: str) -> bytes:
    if (
        not isinstance(pin, str)
        or not 6 <= len(pin) <= 16
        or not pin.isascii()
        or not pin.isdigit()
    ):
        raise PinPolicyError("the phone-shield PIN is 6 to 16 digits")
    return pin.encode("ascii")


def _mask(pin: str, salt: bytes, cost: KdfCost) -> int:
    raw = hash_secret_raw(
        _check_pin(pin),
        salt,
        time_cost=cost.time_cost,
        memory_cost=cost.memory_kib,
        parallelism=cost.parallelism,
        hash_len=64,
        type=Type.ID,
    )
    return int.from_bytes(raw, "big") % _N


class SoftwareKeystore:
    """:class:`Keystore` in software; its state is a JSON-friendly dict (:attr:`data`) that
    the phone persists atomically with the rest of its state."""

    def __init__(
        self,
        authority: SoftwareAttestationAuthority,
        data: dict[str, Any] | None = None,
        *,
        claims: DeviceClaims | None = None,
        cost: KdfCost | None = None,
    ) -> None:
        self.authority = authority
        self.data: dict[str, Any] = dict(data or {})
        self.claims = claims or DeviceClaims()
        self.cost = cost or KdfCost()

    # -- device key
    def generate_device_key(self, challenge: bytes) -> list[bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        self.data["device_key"] = b64e(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return self.authority.attest(key.public_key(), challenge, self.claims)

    def _device_key(self) -> ec.EllipticCurvePrivateKey:
        if "device_key" not in self.data:
            raise ConfigurationError("this phone has no device key: enrol it first")
        key = serialization.load_der_private_key(b64d(self.data["device_key"], "device key"), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidKey("the device key is not an EC key")
        return key

    def sign_with_device_key(self, data: bytes) -> bytes:
        return self._device_key().sign(bytes(data), ec.ECDSA(hashes.SHA256()))

    # -- the share
    def store_share(self, share: sm2_2p.PhoneShare, pin: str) -> None:
        salt = secrets.token_bytes(16)
        d1 = int.from_bytes(share.scalar_bytes(), "big")
        stored = (d1 + _mask(pin, salt, self.cost)) % _N
        self.data["share"] = {
            "salt": b64e(salt),
            "kdf": {
                "name": "argon2id",
                "t": self.cost.time_cost,
                "m": self.cost.memory_kib,
                "p": self.cost.parallelism,
            },
            "masked": b64e(stored.to_bytes(32, "big")),
            "public_key": share.public_key.to_bytes().hex(),
        }
        self.data.pop("biometric", None)

    def has_share(self) -> bool:
        return "share" in self.data

    def _unmask(self, m: int) -> sm2_2p.PhoneShare:
        rec = self.data.get("share")
        if not isinstance(rec, dict):
            raise ConfigurationError("this phone holds no phone-shield share: enrol it first")
        d1 = (int.from_bytes(b64d(rec["masked"], "share"), "big") - m) % _N
        if d1 == 0:  # pragma: no cover - probability 2^-256
            d1 = 1
        return sm2_2p.PhoneShare(d1, sm2.public_key_from_bytes(bytes.fromhex(rec["public_key"])))

    def _stored_cost(self) -> tuple[bytes, KdfCost]:
        rec = self.data.get("share")
        if not isinstance(rec, dict):
            raise ConfigurationError("this phone holds no phone-shield share: enrol it first")
        kdf = rec["kdf"]
        return b64d(rec["salt"], "salt"), KdfCost(int(kdf["t"]), int(kdf["m"]), int(kdf["p"]))

    def load_share(self, pin: str) -> sm2_2p.PhoneShare:
        """The share for ``pin``: a wrong PIN gives a wrong share, silently (see above)."""
        salt, cost = self._stored_cost()
        return self._unmask(_mask(pin, salt, cost))

    # -- biometric stand-in
    def enable_biometric(self, pin: str) -> None:
        salt, cost = self._stored_cost()
        m = _mask(pin, salt, cost)
        key, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        self.data["biometric"] = {
            "key": b64e(key),
            "nonce": b64e(nonce),
            "sealed": b64e(sm4.encrypt_gcm(key, nonce, m.to_bytes(32, "big"), aad=b"biometric")),
        }

    def load_share_biometric(self, prompt: BiometricPrompt, reason: str) -> sm2_2p.PhoneShare:
        rec = self.data.get("biometric")
        if not isinstance(rec, dict):
            raise ConfigurationError("biometric unlock is not enabled on this phone: use the PIN")
        if not prompt.authenticate(reason):
            raise PinPolicyError("the biometric did not match: use the PIN")
        m = sm4.decrypt_gcm(
            b64d(rec["key"], "key"),
            b64d(rec["nonce"], "nonce"),
            b64d(rec["sealed"], "sealed"),
            aad=b"biometric",
        )
        return self._unmask(int.from_bytes(m, "big"))

    def wipe(self) -> None:
        self.data.clear()
