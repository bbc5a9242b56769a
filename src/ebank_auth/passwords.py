"""Login passwords and transaction PINs (AU-11): complexity rules, argon2id hashing
with transparent rehash, and a forced change at first login.

* :class:`PasswordPolicy` — login passwords (length, character classes, no long
  runs of one character, no keyboard/alphabet sequences, not derived from the
  customer's ID number, birthday, phone or user name, no common passwords).
* :class:`PinPolicy` — 6-digit transaction PINs (no all-same, no ascending or
  descending sequence, no repeated pairs/triples, not derived from ID number,
  birthday or phone).
* :class:`PasswordHasher` — argon2id; default parameters follow RFC 9106 §4's second
  recommended option (t=3, m=64 MiB, p=4, 16-byte salt, 32-byte tag).
* :class:`PasswordService` — stores hashes in a :class:`~ebank_auth.store.Store`,
  verifies, rehashes on upgrade, forces a change at first login.

Counting failed logins and locking the account belongs to the policy/lockout layer
(``LoginLockout.attempt(user, check)``).  ``change_password`` checks the old password,
so it is counted the same way: through the application's lockout when one is given
(``PasswordService(store, lockout=lockout)``: one counter for login and change), else
through the service's own counter with the same rule (5 consecutive failures lock
until local midnight, AU-6).

An unknown user costs the same argon2 verification as a known one (against a dummy
hash with the hasher's parameters), so response times do not reveal which user
names exist.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import argon2
import argon2.exceptions

from ebank_auth.errors import (
    AccountLocked,
    ConfigurationError,
    ConflictError,
    PasswordChangeRequired,
    PasswordError,
    PasswordIncorrect,
    PasswordPolicyError,
    StoreError,
)
from ebank_auth.localtime import next_midnight, resolve_timezone
from ebank_auth.store import Store
from ebank_auth.store.keys import check_namespace, store_key

__all__ = [
    "AttemptCounter",
    "LoginResult",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordService",
    "PersonalInfo",
    "PinPolicy",
]

_log = logging.getLogger(__name__)

Secret = str | bytes | bytearray

_COMMON = frozenset(
    {
        "password",
        "passw0rd",
        "p@ssw0rd",
        "qwerty",
        "qwertyuiop",
        "asdfgh",
        "asdfghjkl",
        "zxcvbn",
        "1qaz2wsx",
        "abc123",
        "admin",
        "iloveyou",
        "woaini",
        "letmein",
        "welcome",
        "123qwe",
        "qwe123",
        "aa123456",
        "a123456",
        "a1234567",
        "abcd1234",
    }
)
_KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _text(secret: Secret) -> str:
    if isinstance(secret, str):
        return secret
    try:
        return bytes(secret).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PasswordPolicyError("the password is not valid UTF-8 text") from exc


@dataclass(frozen=True)
class PersonalInfo:
    """Customer data a password or PIN must not be derived from."""

    id_number: str = ""  # 18-character resident ID (last char may be X)
    birthday: date | None = None
    phone: str = ""
    username: str = ""

    def digit_strings(self) -> list[str]:
        """Digit sequences a PIN / password must not contain."""
        out: list[str] = []
        ident = re.sub(r"[^0-9]", "", self.id_number)
        if ident:
            out.append(ident)
        phone = re.sub(r"[^0-9]", "", self.phone)
        if phone:
            out.append(phone)
        if self.birthday is not None:
            b = self.birthday
            out += [
                b.strftime("%Y%m%d"),
                b.strftime("%y%m%d"),
                b.strftime("%m%d%Y"),
                b.strftime("%d%m%Y"),
                b.strftime("%m%d%y"),
                b.strftime("%d%m%y"),
            ]
        return out


def _runs(text: str, step: int) -> int:
    """Longest run where each character's code is the previous one's + ``step``."""
    best = cur = 1 if text else 0
    for a, b in itertools.pairwise(text):
        cur = cur + 1 if ord(b) - ord(a) == step else 1
        best = max(best, cur)
    return best


def _keyboard_run(text: str) -> int:
    low = text.lower()
    best = 0
    for row in _KEYBOARD_ROWS:
        for seq in (row, row[::-1]):
            for size in range(len(seq), 2, -1):
                if size <= best:
                    break
                if any(seq[i : i + size] in low for i in range(len(seq) - size + 1)):
                    best = size
                    break
    return best


def _max_repeat(text: str) -> int:
    best = cur = 1 if text else 0
    for a, b in itertools.pairwise(text):
        cur = cur + 1 if a == b else 1
        best = max(best, cur)
    return best


@dataclass(frozen=True)
class PasswordPolicy:
    """Complexity rules for login passwords.

    ``min_classes``: how many of lower case, upper case, digits and symbols must appear.
    ``max_repeat``: longest allowed run of one character.  ``max_sequence``: longest
    allowed alphabet/number/keyboard sequence (``abcd``, ``4321``, ``qwer``).
    ``personal_fragment``: length of digit fragments of ID number / phone / birthday
    that may not appear in the password.
    """

    min_length: int = 8
    max_length: int = 64
    min_classes: int = 3
    max_repeat: int = 3
    max_sequence: int = 4
    personal_fragment: int = 6
    common_passwords: frozenset[str] = _COMMON

    def __post_init__(self) -> None:
        if not 6 <= self.min_length <= self.max_length <= 1024:
            raise ConfigurationError("password lengths must satisfy 6 <= min <= max <= 1024")
        if not 1 <= self.min_classes <= 4:
            raise ConfigurationError("min_classes must be 1..4")
        if self.max_repeat < 1 or self.max_sequence < 2 or self.personal_fragment < 3:
            raise ConfigurationError("max_repeat >= 1, max_sequence >= 2, personal_fragment >= 3")

    def violations(self, password: Secret, info: PersonalInfo | None = None) -> list[str]:
        """Every rule ``password`` breaks (empty list: acceptable)."""
        pw = _text(password)
        out: list[str] = []
        if not self.min_length <= len(pw) <= self.max_length:
            out.append(f"length must be {self.min_length} to {self.max_length} characters")
        if any(not c.isprintable() for c in pw):
            out.append("control characters are not allowed")
        classes = sum(
            (
                any(c.islower() for c in pw),
                any(c.isupper() for c in pw),
                any(c.isdigit() for c in pw),
                any(not c.isalnum() for c in pw),
            )
        )
        if classes < self.min_classes:
            out.append(
                f"use at least {self.min_classes} of: lower case, upper case, digits, symbols"
            )
        if _max_repeat(pw) > self.max_repeat:
            out.append(f"no character may repeat more than {self.max_repeat} times in a row")
        seq = max(_runs(pw.lower(), 1), _runs(pw.lower(), -1), _keyboard_run(pw))
        if seq > self.max_sequence:
            out.append(f"no sequences longer than {self.max_sequence} (like abcde, 54321, qwert)")
        low = pw.lower()
        if low in self.common_passwords or re.sub(r"[^a-z]", "", low) in self.common_passwords:
            out.append("this is a commonly used password")
        if info is not None:
            digits = re.sub(r"[^0-9]", "", pw)
            n = self.personal_fragment
            for source in info.digit_strings():
                frags = {source[i : i + n] for i in range(max(len(source) - n + 1, 0))}
                if any(f in digits for f in frags if len(f) == n):
                    out.append("must not contain your ID number, phone number or birthday")
                    break
            if info.username and len(info.username) >= 3 and info.username.lower() in low:
                out.append("must not contain your user name")
        return out

    def check(self, password: Secret, info: PersonalInfo | None = None) -> None:
        problems = self.violations(password, info)
        if problems:
            raise PasswordPolicyError("password refused: " + "; ".join(problems))


@dataclass(frozen=True)
class PinPolicy:
    """Rules for numeric transaction PINs (default: exactly 6 digits)."""

    length: int = 6

    def __post_init__(self) -> None:
        if not 4 <= self.length <= 12:
            raise ConfigurationError("PIN length must be 4..12")

    def violations(self, pin: Secret, info: PersonalInfo | None = None) -> list[str]:
        p = _text(pin)
        if len(p) != self.length or not p.isascii() or not p.isdigit():
            return [f"the PIN must be exactly {self.length} digits"]
        out: list[str] = []
        if len(set(p)) == 1:
            out.append("all digits the same")
        if _runs(p, 1) == len(p) or _runs(p, -1) == len(p):
            out.append("ascending or descending sequence")
        for period in (2, 3):
            if len(p) % period == 0 and p == p[:period] * (len(p) // period):
                out.append("repeated pattern")
                break
        if len(set(p)) <= 2 and "repeated pattern" not in out and len(set(p)) > 1:
            out.append("uses only two different digits")
        if info is not None:
            for source in info.digit_strings():
                if p in source or (len(source) < len(p) and source in p):
                    out.append("derived from your ID number, phone number or birthday")
                    break
        return out

    def check(self, pin: Secret, info: PersonalInfo | None = None) -> None:
        problems = self.violations(pin, info)
        if problems:
            raise PasswordPolicyError("PIN refused: " + "; ".join(problems))


class PasswordHasher:
    """argon2id hashing.  Defaults: RFC 9106 §4 second recommended option
    (t=3 passes, 64 MiB memory, 4 lanes, 16-byte salt, 32-byte tag)."""

    def __init__(
        self,
        time_cost: int = 3,
        memory_cost_kib: int = 64 * 1024,
        parallelism: int = 4,
        hash_len: int = 32,
        salt_len: int = 16,
    ) -> None:
        if time_cost < 1 or memory_cost_kib < 8 * parallelism or parallelism < 1:
            raise ConfigurationError("argon2 parameters out of range")
        if hash_len < 16 or salt_len < 16:
            raise ConfigurationError("argon2 hash and salt must be at least 16 bytes")
        self._h = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=hash_len,
            salt_len=salt_len,
            type=argon2.Type.ID,
        )

    def hash(self, password: Secret) -> str:
        return str(self._h.hash(_secret_bytes(password)))

    def verify(self, encoded: str, password: Secret) -> None:
        """Return if ``password`` matches ``encoded``; raise PasswordIncorrect if not.

        A malformed stored hash raises PasswordError (never a bare argon2 exception).
        """
        if not self.check(encoded, password):
            raise PasswordIncorrect()

    def check(self, encoded: str, password: Secret) -> bool:
        """True if ``password`` matches ``encoded``, False if not (a verdict: prefer
        :meth:`verify`, which raises).  A malformed stored hash raises PasswordError."""
        try:
            return bool(self._h.verify(encoded, _secret_bytes(password)))
        except argon2.exceptions.VerifyMismatchError:
            return False
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError) as exc:
            raise PasswordError(
                "the stored password hash is damaged: reset this user's password"
            ) from exc

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return bool(self._h.check_needs_rehash(encoded))
        except (argon2.exceptions.InvalidHashError, ValueError):
            return True


def _secret_bytes(secret: Secret) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


@dataclass(frozen=True)
class LoginResult:
    """A successful password check."""

    user_id: str
    rehashed: bool  # the stored hash was upgraded to the current parameters


class _Outcome(Protocol):
    @property
    def success(self) -> bool: ...


class AttemptCounter(Protocol):
    """Counts an attempt before running ``check`` (True = credential correct) and
    raises :class:`~ebank_auth.errors.AccountLocked` without running it when locked:
    ``policy.LoginLockout`` is one."""

    def attempt(self, user: str, check: Callable[[], bool]) -> _Outcome: ...


MAX_CHANGE_FAILURES = 5
"""Wrong old passwords in ``change_password`` before it locks (own counter; AU-6)."""


class PasswordService:
    """Password records in a store: ``<ns>:rec:<user>`` = JSON {hash, must_change}.

    ``lockout``: the application's login failure counter (e.g. ``LoginLockout``); when
    given, wrong old passwords in :meth:`change_password` count on it, like wrong
    logins.  Without it they count on ``<ns>:fail:<user>`` (5 consecutive failures lock
    until local midnight in ``timezone``).
    """

    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher | None = None,
        policy: PasswordPolicy | None = None,
        *,
        namespace: str = "pw",
        clock: Callable[[], float] | None = None,
        lockout: AttemptCounter | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.policy = policy or PasswordPolicy()
        self.ns = check_namespace(namespace)
        self.clock = clock or store.clock
        self.lockout = lockout
        self._tz = resolve_timezone(timezone)
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def _dummy_hash(self) -> str:
        """A hash of a random secret with the current parameters: verifying against it
        costs what verifying a real user's hash costs."""
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self.hasher.hash(secrets.token_bytes(16))
            return self._dummy

    def _find(self, user_id: str) -> tuple[bytes, dict[str, object]] | None:
        """The user's record, or None (after the same argon2 work) if there is none."""
        try:
            return self._load(user_id)
        except PasswordIncorrect:
            return None

    def _key(self, user_id: str) -> str:
        if not isinstance(user_id, str) or not user_id:
            raise ConfigurationError("the user id must be non-empty text")
        return store_key(self.ns, "rec", user_id)

    def _record(self, encoded: str, must_change: bool) -> bytes:
        return json.dumps(
            {"hash": encoded, "must_change": must_change, "changed_at": self.clock()},
            separators=(",", ":"),
        ).encode()

    def _load(self, user_id: str) -> tuple[bytes, dict[str, object]]:
        raw = self.store.get(self._key(user_id))
        if raw is None:
            raise PasswordIncorrect()  # unknown user looks like a wrong password
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict) or not isinstance(rec.get("hash"), str):
                raise ValueError("bad record")
        except ValueError as exc:
            raise StoreError("stored password record is corrupt: reset the password") from exc
        return raw, rec

    def set_initial_password(self, user_id: str, password: Secret) -> None:
        """Set a bank-issued initial password; the customer must change it at first
        login (the complexity policy applies to the customer's own choice)."""
        raw = self.store.get(self._key(user_id))
        if not self.store.compare_and_set(
            self._key(user_id), raw, self._record(self.hasher.hash(password), True)
        ):
            raise ConflictError("password record changed concurrently: try again")

    def login(self, user_id: str, password: Secret) -> LoginResult:
        """Check the password.  Raises PasswordIncorrect (also for an unknown user,
        after the same argon2 work), or PasswordChangeRequired (only after a *correct*
        password) when a change is due."""
        found = self._find(user_id)
        if found is None:
            self.hasher.check(self._dummy_hash(), password)
            raise PasswordIncorrect()
        raw, rec = found
        encoded = str(rec["hash"])
        self.hasher.verify(encoded, password)
        rehashed = False
        if self.hasher.needs_rehash(encoded):
            fresh = dict(rec)
            fresh["hash"] = self.hasher.hash(password)
            rehashed = self.store.compare_and_set(
                self._key(user_id), raw, json.dumps(fresh, separators=(",", ":")).encode()
            )
            if rehashed:
                _log.info("password hash of %s upgraded to current argon2 parameters", user_id)
        if rec.get("must_change"):
            raise PasswordChangeRequired()
        return LoginResult(user_id, rehashed)

    def change_password(
        self,
        user_id: str,
        old: Secret,
        new: Secret,
        info: PersonalInfo | None = None,
    ) -> None:
        """Replace the password after checking the old one and the policy.

        The old-password check is counted before it runs (see the class docstring):
        raises PasswordIncorrect, AccountLocked (too many wrong old passwords; the
        check is not even run), PasswordPolicyError, ConflictError."""
        found: list[tuple[bytes, dict[str, object]]] = []

        def check() -> bool:
            record = self._find(user_id)
            if record is None:
                self.hasher.check(self._dummy_hash(), old)
                return False
            found.append(record)
            return self.hasher.check(str(record[1]["hash"]), old)

        self._counted(user_id, check)
        raw, rec = found[0]
        self.policy.check(new, info)
        if self.hasher.check(str(rec["hash"]), new):
            raise PasswordPolicyError("the new password must differ from the current one")
        if not self.store.compare_and_set(
            self._key(user_id), raw, self._record(self.hasher.hash(new), False)
        ):
            raise ConflictError("password record changed concurrently: try again")

    def _counted(self, user_id: str, check: Callable[[], bool]) -> None:
        """Run ``check`` as a counted attempt; raise PasswordIncorrect if it fails."""
        if self.lockout is not None:
            if not self.lockout.attempt(user_id, check).success:
                raise PasswordIncorrect()
            return
        key = store_key(self.ns, "fail", user_id)
        now = self.clock()
        until = next_midnight(now, self._tz)
        counted = self.store.incr_bounded(
            key, MAX_CHANGE_FAILURES, ttl=max(1.0, until.timestamp() - now)
        )  # persisted before the check
        if not counted.allowed:
            raise AccountLocked(
                f"too many wrong passwords: locked until {until:%Y-%m-%d %H:%M} "
                f"({until.tzname()}); try again then or contact the bank"
            )
        if not check():
            left = MAX_CHANGE_FAILURES - counted.value
            if left <= 0:
                _log.warning("password change of %s locked after wrong old passwords", user_id)
            raise PasswordIncorrect(
                f"wrong password: {left} tr{'y' if left == 1 else 'ies'} left before the "
                "account is locked"
            )
        self.store.reset_counter(key)

    def must_change(self, user_id: str) -> bool:
        _, rec = self._load(user_id)
        return bool(rec.get("must_change"))
