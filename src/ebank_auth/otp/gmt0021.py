"""GM/T 0021 one-time password with SM3 (dynamic-password tokens, 动态口令).

T  = floor(t / Tc)                      time factor, 8 bytes big-endian
C  = event counter                      4 bytes big-endian
Q  = challenge                          ASCII bytes
ID = T ‖ C ‖ Q, right-padded with zero bytes to at least 16 bytes
S  = SM3(K ‖ ID)
OD = (sum of the eight 32-bit big-endian words of S) mod 2^32
P  = OD mod 10^N                        printed with N digits (leading zeros kept)
"""

from __future__ import annotations

from ebank_auth.crypto import sm3
from ebank_auth.errors import ConfigurationError, EncodingError

__all__ = ["sm3_otp", "time_factor"]


def time_factor(unix_time: float, step: int = 60) -> int:
    """T = floor(t / Tc) for a step Tc in seconds."""
    if step <= 0:
        raise ConfigurationError("GM/T 0021 time step Tc must be a positive number of seconds")
    if unix_time < 0:
        raise ConfigurationError("time must not be negative")
    return int(unix_time // step)


def sm3_otp(
    key: bytes,
    t: int,
    counter: int = 0,
    challenge: bytes | str = b"",
    digits: int = 6,
) -> str:
    """The GM/T 0021 SM3 one-time password for time factor ``t`` (already divided by Tc),
    event counter ``counter`` and challenge ``challenge``."""
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ConfigurationError("GM/T 0021 seed key must be at least 128 bits (16 bytes)")
    if not 0 <= t < 1 << 64:
        raise EncodingError("time factor T must fit in 8 bytes")
    if not 0 <= counter < 1 << 32:
        raise EncodingError("event counter C must fit in 4 bytes")
    if not 4 <= digits <= 10:
        raise ConfigurationError("GM/T 0021 passwords have 4 to 10 digits")
    if isinstance(challenge, str):
        try:
            q = challenge.encode("ascii")
        except UnicodeEncodeError as exc:
            raise EncodingError("challenge Q must be ASCII") from exc
    else:
        q = bytes(challenge)
    ident = t.to_bytes(8, "big") + counter.to_bytes(4, "big") + q
    if len(ident) < 16:
        ident = ident.ljust(16, b"\x00")
    s = sm3.digest(bytes(key) + ident)
    od = sum(int.from_bytes(s[i : i + 4], "big") for i in range(0, 32, 4)) % (1 << 32)
    return f"{od % 10**digits:0{digits}d}"
