"""Secure channel between host and token (UK-5 PIN in transit, AU-13 session keys).

Shared by the host (:mod:`ebank_auth.usbkey.session`) and the software token.
Specified in ``docs/usbkey-protocol.md`` §4.  In short:

1. ``OPEN_SECURE_CHANNEL``: the host sends a 16-byte nonce ``Nh``.  The token
   makes an *ephemeral* SM2 key pair ``E``, a nonce ``Nt``, and signs
   ``"EBANK-SC-v1" ‖ Nh ‖ Nt ‖ E.pub ‖ SM3(device info)`` with its device key.
   The host checks that signature with the public key of the device certificate
   it validated against the manufacturer root, so only a genuine token can answer.
2. ``ESTABLISH_KEYS``: the host draws a 32-byte secret ``S`` and sends
   ``SM2-Encrypt(E.pub, S)``.  Both sides derive
   ``Kcmd ‖ Krsp ‖ Kconf = SM3-KDF("EBANK-SC-v1" ‖ S ‖ transcript-hash, 48)``;
   the token proves it has the keys with ``HMAC-SM3(Kconf, transcript-hash)``.
   ``E`` is discarded afterwards (forward secrecy).
3. Each later command is wrapped as ``CLA 84``: body ``ctr(4) ‖ SM4-GCM(Kcmd,
   nonce=00000001‖ctr(8), data, aad=label‖"C"‖header‖ctr)``; the response body is
   ``SM4-GCM(Krsp, nonce=00000002‖ctr(8), data‖SW, aad=label‖"R"‖header‖ctr)``
   with outer status ``9000``.  The counter starts at 1 and must go up by exactly
   one: a replayed or reordered APDU fails, and any failure closes the channel.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Final

from ebank_auth.crypto import sm2, sm3, sm4
from ebank_auth.errors import (
    CryptoError,
    EncodingError,
    InvalidSignature,
    SecureChannelError,
    TokenNotGenuine,
)

__all__ = [
    "COUNTER_BYTES",
    "LABEL",
    "NONCE_BYTES",
    "SECRET_BYTES",
    "HostHandshake",
    "Role",
    "SecureChannel",
    "SessionKeys",
    "TokenHandshake",
    "handshake_message",
    "transcript_hash",
]

LABEL: Final = b"EBANK-SC-v1"
NONCE_BYTES: Final = 16
SECRET_BYTES: Final = 32
COUNTER_BYTES: Final = 4
_TAG_BYTES: Final = 16
_MAX_COUNTER: Final = 2**32 - 1


def _random(n: int) -> bytes:
    from ebank_auth.crypto import random_bytes

    out: bytes = random_bytes(n)
    return out


class Role(Enum):
    HOST = "host"
    TOKEN = "token"  # noqa: S105 - a role name, not a secret


def handshake_message(host_nonce: bytes, token_nonce: bytes, eph_pub: bytes, info: bytes) -> bytes:
    """The bytes the token's device key signs in ``OPEN_SECURE_CHANNEL``."""
    return LABEL + host_nonce + token_nonce + eph_pub + sm3.digest(info)


def transcript_hash(message: bytes, ciphertext: bytes) -> bytes:
    """SM3 over the signed handshake message and the key ciphertext."""
    return sm3.digest(LABEL + b"transcript" + message + ciphertext)


@dataclass
class SessionKeys:
    """Per-session keys (AU-13): command key, response key, key-confirmation key."""

    cmd: bytearray
    rsp: bytearray
    conf: bytearray

    @classmethod
    def derive(cls, secret: bytes, th: bytes) -> SessionKeys:
        material = bytearray(sm3.kdf(LABEL + secret + th, 48))
        keys = cls(material[0:16], material[16:32], material[32:48])
        material[:] = bytes(len(material))
        return keys

    def confirmation(self, th: bytes) -> bytes:
        return sm3.hmac(bytes(self.conf), LABEL + b"confirm" + th)

    def wipe(self) -> None:
        for buf in (self.cmd, self.rsp, self.conf):
            buf[:] = bytes(len(buf))


class SecureChannel:
    """One established session: wraps/unwraps APDU bodies with a strict counter."""

    def __init__(self, keys: SessionKeys, role: Role) -> None:
        self._keys = keys
        self.role = role
        self._counter = 0  # last counter sent (host) or accepted (token)
        self.open = True

    @property
    def counter(self) -> int:
        return self._counter

    def close(self) -> None:
        """Forget the keys (zeroised); every later wrap/unwrap fails."""
        if self.open:
            self._keys.wipe()
            self.open = False

    def _require_open(self) -> None:
        if not self.open:
            raise SecureChannelError("the secure channel is closed: open a new one")

    @staticmethod
    def _nonce(direction: int, ctr: int) -> bytes:
        return direction.to_bytes(4, "big") + ctr.to_bytes(8, "big")

    @staticmethod
    def _aad(direction: bytes, header: bytes, ctr: int) -> bytes:
        return LABEL + direction + header + ctr.to_bytes(COUNTER_BYTES, "big")

    # -- host side ------------------------------------------------------------------------
    def wrap_command(self, header: bytes, data: bytes) -> tuple[bytes, int]:
        """Host: encrypt a command body; returns ``(wrapped body, counter)``."""
        self._require_open()
        if self.role is not Role.HOST:
            raise SecureChannelError("only the host wraps commands")
        if self._counter >= _MAX_COUNTER:
            self.close()
            raise SecureChannelError("secure channel counter exhausted: open a new one")
        self._counter += 1
        ctr = self._counter
        ct = sm4.encrypt_gcm(
            bytes(self._keys.cmd), self._nonce(1, ctr), data, aad=self._aad(b"C", header, ctr)
        )
        return ctr.to_bytes(COUNTER_BYTES, "big") + ct, ctr

    def unwrap_response(self, header: bytes, body: bytes, ctr: int) -> tuple[bytes, int]:
        """Host: decrypt a response body; returns ``(data, inner status word)``."""
        self._require_open()
        try:
            plain = sm4.decrypt_gcm(
                bytes(self._keys.rsp), self._nonce(2, ctr), body, aad=self._aad(b"R", header, ctr)
            )
        except CryptoError:
            self.close()
            raise SecureChannelError(
                "the token's answer failed the secure-channel check (altered or replayed): "
                "reconnect the token"
            ) from None
        if len(plain) < 2:
            self.close()
            raise SecureChannelError("secure-channel answer without a status word")
        return plain[:-2], (plain[-2] << 8) | plain[-1]

    # -- token side -----------------------------------------------------------------------
    def unwrap_command(self, header: bytes, body: bytes) -> tuple[bytes, int]:
        """Token: check counter and tag of a command body; returns ``(data, counter)``.

        Any failure closes the channel (the host must open a new one)."""
        self._require_open()
        if len(body) < COUNTER_BYTES + _TAG_BYTES:
            self.close()
            raise SecureChannelError("secure-channel command too short")
        ctr = int.from_bytes(body[:COUNTER_BYTES], "big")
        if ctr != self._counter + 1:
            self.close()
            raise SecureChannelError("secure-channel counter out of sequence (replay or reorder)")
        try:
            plain = sm4.decrypt_gcm(
                bytes(self._keys.cmd),
                self._nonce(1, ctr),
                body[COUNTER_BYTES:],
                aad=self._aad(b"C", header, ctr),
            )
        except CryptoError:
            self.close()
            raise SecureChannelError("secure-channel command failed its integrity check") from None
        self._counter = ctr
        return plain, ctr

    def wrap_response(self, header: bytes, data: bytes, sw: int, ctr: int) -> bytes:
        """Token: encrypt ``data ‖ SW`` for the command with counter ``ctr``."""
        self._require_open()
        return sm4.encrypt_gcm(
            bytes(self._keys.rsp),
            self._nonce(2, ctr),
            data + sw.to_bytes(2, "big"),
            aad=self._aad(b"R", header, ctr),
        )


class HostHandshake:
    """Host half of the handshake; ``device_key`` comes from the validated device certificate."""

    def __init__(self, device_key: sm2.SM2PublicKey) -> None:
        self._device_key = device_key
        self.host_nonce = _random(NONCE_BYTES)

    def finish(
        self, token_nonce: bytes, eph_pub: bytes, signature: bytes, device_info: bytes
    ) -> tuple[bytes, SecureChannel, bytes]:
        """Check the token's signature and make the key ciphertext.

        Returns ``(ciphertext to send, channel, expected key confirmation)``.
        Raises :class:`TokenNotGenuine` when the device key did not sign."""
        if len(token_nonce) != NONCE_BYTES:
            raise SecureChannelError("token nonce has the wrong length")
        message = handshake_message(self.host_nonce, token_nonce, eph_pub, device_info)
        try:
            self._device_key.verify(signature, message, uid=sm2.DEFAULT_UID)
        except (InvalidSignature, CryptoError, EncodingError):
            raise TokenNotGenuine(
                "the token could not prove possession of its certified device key: "
                "it is not genuine or was tampered with; do not use it"
            ) from None
        try:
            ephemeral = sm2.public_key_from_bytes(eph_pub)
        except (CryptoError, EncodingError):
            raise SecureChannelError("token sent an invalid ephemeral key") from None
        secret = bytearray(_random(SECRET_BYTES))
        try:
            ciphertext = ephemeral.encrypt(bytes(secret))
            th = transcript_hash(message, ciphertext)
            keys = SessionKeys.derive(bytes(secret), th)
        finally:
            secret[:] = bytes(SECRET_BYTES)
        return ciphertext, SecureChannel(keys, Role.HOST), keys.confirmation(th)

    @staticmethod
    def check_confirmation(expected: bytes, got: bytes, channel: SecureChannel) -> None:
        if not hmac.compare_digest(expected, got):
            channel.close()
            raise SecureChannelError("the token did not confirm the session keys")


class TokenHandshake:
    """Token half: holds the ephemeral key between the two handshake commands."""

    def __init__(
        self, device_key: sm2.SM2PrivateKey, device_info: bytes, host_nonce: bytes
    ) -> None:
        if len(host_nonce) != NONCE_BYTES:
            raise SecureChannelError("host nonce has the wrong length")
        self._ephemeral: sm2.SM2PrivateKey | None = sm2.generate_private_key()
        self.token_nonce = _random(NONCE_BYTES)
        self.eph_pub = self._ephemeral.public_key().to_bytes()
        self.message = handshake_message(host_nonce, self.token_nonce, self.eph_pub, device_info)
        self.signature = device_key.sign(self.message, uid=sm2.DEFAULT_UID)

    def complete(self, ciphertext: bytes) -> tuple[SecureChannel, bytes]:
        """Decrypt the host's secret; returns ``(channel, key confirmation)``.  One use only."""
        eph = self._ephemeral
        self._ephemeral = None
        if eph is None:
            raise SecureChannelError("handshake already used")
        try:
            secret = bytearray(eph.decrypt(ciphertext))
        except (CryptoError, EncodingError):
            raise SecureChannelError("key ciphertext does not decrypt") from None
        try:
            if len(secret) != SECRET_BYTES:
                raise SecureChannelError("session secret has the wrong length")
            th = transcript_hash(self.message, ciphertext)
            keys = SessionKeys.derive(bytes(secret), th)
        finally:
            secret[:] = bytes(len(secret))
        return SecureChannel(keys, Role.TOKEN), keys.confirmation(th)
