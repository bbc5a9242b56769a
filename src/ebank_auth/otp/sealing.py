"""Token secrets encrypted at rest with SM4-GCM, under versioned keys so keys rotate.

Sealed blob layout (bytes)::

    b"EAS1" ‖ key_version (2 bytes BE) ‖ nonce (12 bytes) ‖ SM4-GCM(ciphertext ‖ tag)

The associated data binds a blob to its owner and purpose (e.g. ``totp:alice``), so
a sealed secret copied onto another user's record fails to open.  Rotation: add a
new key version, make it current; old blobs still open and :meth:`SecretSealer.reseal`
re-encrypts them under the current key (services do it on use).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from types import MappingProxyType

from ebank_auth.crypto import sm4
from ebank_auth.errors import ConfigurationError, DecryptionError

__all__ = ["SecretSealer"]

_MAGIC = b"EAS1"
_NONCE = 12
_HEADER = len(_MAGIC) + 2 + _NONCE


class SecretSealer:
    """Seals and opens secrets with SM4-GCM.

    ``keys``: key version (1..65535) -> 16-byte SM4 key.  ``current``: the version
    used for new blobs (default: the highest).
    """

    def __init__(self, keys: Mapping[int, bytes], current: int | None = None) -> None:
        if not keys:
            raise ConfigurationError("SecretSealer needs at least one key")
        checked: dict[int, bytes] = {}
        for version, key in keys.items():
            if not isinstance(version, int) or not 1 <= version <= 0xFFFF:
                raise ConfigurationError("key versions must be integers from 1 to 65535")
            if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
                raise ConfigurationError(f"key version {version} must be 16 bytes (SM4)")
            checked[version] = bytes(key)
        self._keys = MappingProxyType(checked)
        self.current = max(checked) if current is None else current
        if self.current not in checked:
            raise ConfigurationError(f"current key version {self.current} has no key")

    @classmethod
    def generate(cls) -> SecretSealer:
        """A sealer with one fresh random key (version 1); for tests and demos."""
        return cls({1: secrets.token_bytes(16)})

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def seal(self, secret: bytes, aad: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        header = _MAGIC + self.current.to_bytes(2, "big") + nonce
        ct = sm4.encrypt_gcm(self._keys[self.current], nonce, bytes(secret), aad=header + aad)
        return header + ct

    @staticmethod
    def version_of(blob: bytes) -> int:
        if len(blob) < _HEADER + 16 or not blob.startswith(_MAGIC):
            raise DecryptionError("sealed secret is malformed (not an EAS1 blob)")
        return int.from_bytes(blob[4:6], "big")

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        """The secret inside ``blob``; DecryptionError if altered, for another owner or
        under an unknown key version."""
        version = self.version_of(blob)
        key = self._keys.get(version)
        if key is None:
            raise DecryptionError(
                f"sealed secret uses key version {version}, which this server does not have"
            )
        header, ct = blob[:_HEADER], blob[_HEADER:]
        return sm4.decrypt_gcm(key, header[6:], ct, aad=header + aad)

    def needs_reseal(self, blob: bytes) -> bool:
        return self.version_of(blob) != self.current

    def reseal(self, blob: bytes, aad: bytes = b"") -> bytes:
        """``blob`` re-encrypted under the current key version."""
        return self.seal(self.open(blob, aad), aad)
