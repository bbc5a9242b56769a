"""Pairings: which page session may use the agent (``POST /v1/pair``, ``Authorization: Bearer``).

A pairing is a random 256-bit value the agent hands to a page of an allowed origin.  It is bound
to that origin (a pairing made by origin A is refused from origin B), carries the *binding* the
page chose (e.g. the bank's session or transaction reference, echoed in every signature answer),
expires after :data:`PAIRING_IDLE_SECONDS` without use, and at most :data:`MAX_PAIRINGS` live at
once (making another drops the oldest).  Only the SM3 hash of a pairing is kept; lookups compare
hashes with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ebank_auth.crypto import sm3

__all__ = ["MAX_PAIRINGS", "PAIRING_IDLE_SECONDS", "Pairing", "Pairings"]

#: A pairing unused for this long is forgotten.
PAIRING_IDLE_SECONDS: Final = 600
#: Live pairings at most; a new one drops the oldest.
MAX_PAIRINGS: Final = 16


@dataclass
class Pairing:
    """One live pairing (the secret itself is not kept)."""

    digest: bytes
    origin: str
    binding: str
    created: float
    last_used: float


class Pairings:
    """The agent's live pairings (thread-safe)."""

    def __init__(
        self,
        *,
        idle_seconds: float = PAIRING_IDLE_SECONDS,
        limit: int = MAX_PAIRINGS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.limit = limit
        self._clock = clock
        self._live: list[Pairing] = []
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        self._live = [p for p in self._live if now - p.last_used < self.idle_seconds]

    def create(self, origin: str, binding: str) -> str:
        """A new pairing for ``origin`` (64 hex characters; shown once, never stored)."""
        secret = secrets.token_hex(32)
        now = self._clock()
        with self._lock:
            self._expire(now)
            self._live.append(Pairing(sm3.digest(secret.encode()), origin, binding, now, now))
            self._live.sort(key=lambda p: p.created)
            del self._live[: max(0, len(self._live) - self.limit)]
        return secret

    def use(self, secret: str, origin: str) -> Pairing | None:
        """The live pairing ``secret`` of ``origin`` (its idle time restarts), or None."""
        if len(secret) != 64:
            return None
        digest = sm3.digest(secret.encode("ascii", "replace"))
        now = self._clock()
        with self._lock:
            self._expire(now)
            found = None
            for p in self._live:  # every entry compared: no early exit on a match
                if hmac.compare_digest(p.digest, digest):
                    found = p
            if found is None or not hmac.compare_digest(found.origin.encode(), origin.encode()):
                return None
            found.last_used = now
            return found

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._live)
