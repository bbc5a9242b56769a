"""The dynamic soft keyboard, server side.

1. :meth:`SoftKeyboard.open` creates a session: a CSPRNG-shuffled layout whose keys
   carry random per-session key ids; the mapping key id -> label stays in the store.
   The client receives the key ids, the positions, an SVG drawing (labels as
   pixels, not text) and the server's SM2 public key.
2. For each key press the client encrypts one keystroke record with SM2 to the
   server's public key::

       b"SK1" ‖ session id (16 bytes) ‖ index (2 bytes BE) ‖ key id (ASCII)

   so the client holds key ids and ciphertexts only, never the password.
3. With the keystrokes the client sends a *length commitment* (:func:`commit_length`)::

       length (2 bytes BE) ‖ HMAC-SM3(commit key, b"SK1-LEN" ‖ session id ‖ length)

   keyed with a random per-session secret that only the client view carries, so
   whoever relays the submission cannot pass a prefix of the keystrokes off as a
   shorter input (issue 11 item 14).
4. :meth:`SoftKeyboard.submit` checks the commitment against the number of
   keystrokes, decrypts each record, requires the session id to match and the
   indexes to run 0, 1, 2, … (a replayed, reordered, dropped or foreign keystroke is
   refused), maps the ids back through the stored layout and consumes the session
   (single use).

In ``SYSTEM`` mode (the user switched to the system keyboard) the record carries
the typed character itself instead of a key id; the result is flagged
``system_keyboard=True`` so policy can treat it as weaker.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from ebank_auth.crypto import sm2, sm3
from ebank_auth.errors import ConfigurationError, CryptoError, SoftKeyboardError
from ebank_auth.softkeyboard.render import render_svg, render_terminal
from ebank_auth.store import Store
from ebank_auth.store.keys import check_namespace, store_key

__all__ = [
    "KEYSTROKE_MAGIC",
    "DecodedInput",
    "KeyboardLayout",
    "KeyboardMode",
    "SoftKeyboard",
    "commit_length",
    "encode_keystroke",
]

_log = logging.getLogger(__name__)

KEYSTROKE_MAGIC = b"SK1"
_SID_BYTES = 16
_MAX_FAILED_SUBMITS = 3
_COMMIT_KEY_BYTES = 16
_COMMIT_LABEL = b"SK1-LEN"
_COMMIT_BYTES = 2 + sm3.DIGEST_SIZE


class KeyboardMode(str, Enum):
    DIGITS = "digits"  # 0-9, e.g. 6-digit transaction PIN
    ALPHANUMERIC = "alphanumeric"  # 0-9, a-z, A-Z (login passwords)
    SYSTEM = "system"  # the user switched to the system keyboard: flagged to policy


_LABELS = {
    KeyboardMode.DIGITS: string.digits,
    KeyboardMode.ALPHANUMERIC: string.digits + string.ascii_lowercase + string.ascii_uppercase,
}
_SYSTEM_CHARS = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")


def encode_keystroke(session_id: str, index: int, value: str) -> bytes:
    """The plaintext of one keystroke record (what the client encrypts)."""
    return KEYSTROKE_MAGIC + bytes.fromhex(session_id) + index.to_bytes(2, "big") + value.encode()


def commit_length(commit_key: bytes, session_id: str, length: int) -> bytes:
    """The client's commitment to the number of keystrokes it submits:
    ``length (2 B BE) ‖ HMAC-SM3(commit_key, b"SK1-LEN" ‖ session id ‖ length)``."""
    if not 0 <= length <= 0xFFFF:
        raise SoftKeyboardError("input length out of range: type again")
    n = length.to_bytes(2, "big")
    return n + sm3.hmac(commit_key, _COMMIT_LABEL + bytes.fromhex(session_id) + n)


@dataclass(frozen=True)
class KeyboardLayout:
    """One keyboard session as sent to the client.

    ``keys``: (key id, label) in display order.  Labels are for drawing the
    image/SVG on the server; :meth:`client_view` leaves them out.
    """

    session_id: str
    mode: KeyboardMode
    keys: tuple[tuple[str, str], ...]
    columns: int
    expires_at: float
    public_key: bytes  # server SM2 public key, SubjectPublicKeyInfo DER
    system_keyboard_allowed: bool = True
    commit_key: bytes = field(default=b"", repr=False)  # per-session secret for commit_length

    def svg(self) -> str:
        return render_svg(self.keys, self.columns) if self.keys else ""

    def terminal(self) -> str:
        return render_terminal(self.keys, self.columns)

    def client_view(self) -> dict[str, object]:
        """What the page/app receives: ids and positions, an SVG, no labels in text."""
        return {
            "session_id": self.session_id,
            "mode": self.mode.value,
            "columns": self.columns,
            "key_ids": [key_id for key_id, _ in self.keys],
            "svg": self.svg(),
            "expires_at": self.expires_at,
            "public_key_der_hex": self.public_key.hex(),
            "system_keyboard_allowed": self.system_keyboard_allowed,
            "commit_key_hex": self.commit_key.hex(),
        }


@dataclass
class DecodedInput:
    """The decoded password/PIN, server side.  ``value`` is a bytearray so it can be
    wiped: call :meth:`wipe` (or use ``with``) once it has been checked."""

    value: bytearray = field(repr=False)
    length: int
    mode: KeyboardMode
    system_keyboard: bool

    @property
    def masked(self) -> str:
        return "*" * self.length

    def wipe(self) -> None:
        for i in range(len(self.value)):
            self.value[i] = 0
        self.value.clear()

    def __enter__(self) -> DecodedInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()


class SoftKeyboard:
    """Creates keyboard sessions and decodes submitted keystrokes.

    ``private_key``: the server's SM2 key (keystrokes are encrypted to its public key).
    ``ttl``: session lifetime in seconds.  ``max_length``: longest accepted input.
    ``allow_system_keyboard``: whether the switch to the system keyboard is offered.
    """

    def __init__(
        self,
        store: Store,
        private_key: sm2.SM2PrivateKey,
        *,
        ttl: float = 120.0,
        max_length: int = 32,
        allow_system_keyboard: bool = True,
        namespace: str = "sk",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not 5 <= ttl <= 1800:
            raise ConfigurationError("a soft keyboard session must last 5 to 1800 seconds (ttl)")
        if not 1 <= max_length <= 128:
            raise ConfigurationError("the longest input (max_length) must be 1 to 128 keystrokes")
        self.store = store
        self._key = private_key
        self._pub_der = private_key.public_key().to_der()
        self.ttl = float(ttl)
        self.max_length = max_length
        self.allow_system_keyboard = allow_system_keyboard
        self.ns = check_namespace(namespace)
        self.clock = clock or store.clock
        self._rng = secrets.SystemRandom()

    def _k(self, kind: str, session_id: str) -> str:
        return store_key(self.ns, kind, session_id)

    # -- sessions ---------------------------------------------------------------------
    def open(self, mode: KeyboardMode = KeyboardMode.DIGITS) -> KeyboardLayout:
        """A new session with a freshly shuffled layout."""
        mode = KeyboardMode(mode)
        if mode is KeyboardMode.SYSTEM and not self.allow_system_keyboard:
            raise SoftKeyboardError(
                "the system keyboard is not allowed here: use the soft keyboard"
            )
        labels = list(_LABELS.get(mode, ""))
        self._rng.shuffle(labels)
        ids: set[str] = set()
        keys: list[tuple[str, str]] = []
        for label in labels:
            key_id = secrets.token_hex(6)
            while key_id in ids:  # pragma: no cover - 48-bit ids
                key_id = secrets.token_hex(6)
            ids.add(key_id)
            keys.append((key_id, label))
        session_id = secrets.token_hex(_SID_BYTES)
        commit_key = secrets.token_bytes(_COMMIT_KEY_BYTES)
        now = self.clock()
        record = json.dumps(
            {"mode": mode.value, "map": dict(keys), "exp": now + self.ttl, "ck": commit_key.hex()},
            separators=(",", ":"),
        ).encode()
        if not self.store.put_if_absent(self._k("sess", session_id), record, ttl=self.ttl):
            raise SoftKeyboardError("keyboard session id collision: open the keyboard again")
        columns = 3 if mode is KeyboardMode.DIGITS else 10
        return KeyboardLayout(
            session_id=session_id,
            mode=mode,
            keys=tuple(keys),
            columns=columns,
            expires_at=now + self.ttl,
            public_key=self._pub_der,
            system_keyboard_allowed=self.allow_system_keyboard,
            commit_key=commit_key,
        )

    def switch_to_system(self, session_id: str) -> KeyboardLayout:
        """The user pressed "switch to system keyboard": the soft session is closed and
        a SYSTEM session (flagged to policy) replaces it.

        Only an open, unexpired soft session can be switched, and only once: it is consumed
        atomically, so an unknown, used, expired or already switched id (or a SYSTEM
        session) raises :class:`SoftKeyboardError` and no session is opened."""
        self._check_session_id(session_id)
        record = self.store.consume(self._k("sess", session_id))
        if record is None:
            raise SoftKeyboardError(
                "keyboard session unknown, expired or already used: open the keyboard again"
            )
        rec = json.loads(record)
        if self.clock() >= float(rec["exp"]):
            raise SoftKeyboardError("keyboard session expired: open the keyboard again")
        if KeyboardMode(rec["mode"]) is KeyboardMode.SYSTEM:
            self.store.put_if_absent(
                self._k("sess", session_id), record, ttl=max(1.0, float(rec["exp"]) - self.clock())
            )
            raise SoftKeyboardError("this is the system keyboard already: type the password")
        return self.open(KeyboardMode.SYSTEM)

    @staticmethod
    def _check_session_id(session_id: str) -> None:
        if (
            not isinstance(session_id, str)
            or len(session_id) != 2 * _SID_BYTES
            or any(c not in "0123456789abcdef" for c in session_id)
        ):
            raise SoftKeyboardError("unknown keyboard session: open the keyboard again")

    # -- input ------------------------------------------------------------------------
    def submit(
        self, session_id: str, keystrokes: Sequence[bytes], *, commitment: bytes
    ) -> DecodedInput:
        """Decode the encrypted keystrokes of ``session_id`` (single use).

        ``commitment`` is the client's :func:`commit_length` for the number of
        keystrokes it typed.  Raises SoftKeyboardError for an unknown/expired/used
        session, an empty or too long input, a commitment that is missing, forged or
        for another length (a prefix of the keystrokes), a ciphertext that does not
        decrypt, belongs to another session, is replayed or out of order, or names a
        key not on this layout.
        """
        self._check_session_id(session_id)
        key = self._k("sess", session_id)
        record = self.store.get(key)
        if record is None:
            raise SoftKeyboardError(
                "keyboard session unknown, expired or already used: open the keyboard again"
            )
        rec = json.loads(record)
        if self.clock() >= float(rec["exp"]):
            raise SoftKeyboardError("keyboard session expired: open the keyboard again")
        mode = KeyboardMode(rec["mode"])
        mapping: dict[str, str] = rec["map"]
        if not isinstance(keystrokes, Sequence) or not 1 <= len(keystrokes) <= self.max_length:
            raise SoftKeyboardError(f"input must be 1 to {self.max_length} keystrokes")
        sid = bytes.fromhex(session_id)
        header = len(KEYSTROKE_MAGIC) + _SID_BYTES + 2
        value = bytearray()
        try:
            self._check_commitment(rec, session_id, len(keystrokes), commitment)
            for index, ciphertext in enumerate(keystrokes):
                if not isinstance(ciphertext, (bytes, bytearray)) or len(ciphertext) > 512:
                    raise SoftKeyboardError("a keystroke is not an encrypted keystroke: type again")
                try:
                    plain = self._key.decrypt(bytes(ciphertext))
                except CryptoError as exc:
                    raise SoftKeyboardError("a keystroke did not decrypt: type again") from exc
                if len(plain) <= header or not plain.startswith(KEYSTROKE_MAGIC):
                    raise SoftKeyboardError("a keystroke is malformed: type again")
                if not secrets.compare_digest(plain[3 : 3 + _SID_BYTES], sid):
                    raise SoftKeyboardError(
                        "a keystroke belongs to another keyboard session: open the keyboard again"
                    )
                if int.from_bytes(plain[3 + _SID_BYTES : header], "big") != index:
                    raise SoftKeyboardError("keystrokes replayed or out of order: type again")
                body = plain[header:]
                if mode is KeyboardMode.SYSTEM:
                    try:
                        char = body.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise SoftKeyboardError("a keystroke is malformed: type again") from exc
                    if len(char) != 1 or char not in _SYSTEM_CHARS:
                        raise SoftKeyboardError(
                            "a keystroke is not a printable character: type again"
                        )
                    value += body
                else:
                    label = mapping.get(body.decode("ascii", "replace"))
                    if label is None:
                        raise SoftKeyboardError(
                            "a keystroke names a key not on this keyboard: open the keyboard again"
                        )
                    value += label.encode()
        except SoftKeyboardError:
            for i in range(len(value)):
                value[i] = 0
            failed = self.store.incr_bounded(
                self._k("fail", session_id), _MAX_FAILED_SUBMITS - 1, ttl=self.ttl
            )
            if not failed.allowed:  # too many bad submissions: burn the session
                self.store.delete(key)
            raise
        # single use: exactly one submission consumes the session
        if self.store.consume(key) != record:
            for i in range(len(value)):
                value[i] = 0
            raise SoftKeyboardError("keyboard session already used: open the keyboard again")
        _log.info(
            "soft keyboard session %s: %d keystrokes decoded (%s)",
            session_id[:8],
            len(keystrokes),
            mode.value,
        )
        return DecodedInput(
            value=value,
            length=len(keystrokes),
            mode=mode,
            system_keyboard=mode is KeyboardMode.SYSTEM,
        )

    @staticmethod
    def _check_commitment(
        rec: dict[str, object], session_id: str, count: int, commitment: object
    ) -> None:
        ck = rec.get("ck")
        if not isinstance(ck, str) or not ck:  # a session from before commitments: refuse
            raise SoftKeyboardError(
                "keyboard session has no length commitment key: open the keyboard again"
            )
        if not isinstance(commitment, (bytes, bytearray)) or len(commitment) != _COMMIT_BYTES:
            raise SoftKeyboardError(
                "the input length commitment is missing or malformed: type again"
            )
        expected = commit_length(bytes.fromhex(ck), session_id, count)
        if not secrets.compare_digest(bytes(commitment), expected):
            raise SoftKeyboardError(
                "the keystrokes do not match the committed input length "
                "(keystrokes dropped or added): type again"
            )

    @staticmethod
    def mask(count: int, char: str = "*") -> str:
        """What the input field shows after ``count`` key presses (``*`` or ``#``)."""
        if char not in ("*", "#"):
            raise ConfigurationError("mask character must be '*' or '#'")
        return char * max(count, 0)
