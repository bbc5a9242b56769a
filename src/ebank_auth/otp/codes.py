"""SMS and voice one-time codes bound to a transaction.

Life of a code (all state in a :class:`~ebank_auth.store.Store`, so several app
processes share it and it survives restarts)::

    issue(user, purpose, channel, transaction)
      1. phone := E.164(registry.registered_phone(user))   (never a caller-given number)
      2. cooldowns cool:user:<user> and cool:phone:<tag>, checked then put_if_absent
         (one per customer whatever the purpose, one per handset) -> RateLimited
      3. caps      both daily counters read first (a refusal consumes neither), then
                   incr_bounded(day:user:DATE) and (day:phone:DATE), ttl = end of local day
      4. record    {id, HMAC-SM3(server_key, id|user|purpose|channel|tx|code), tx, times}
                   replaces any earlier code of (user, purpose) in ONE compare_and_set;
                   tries are counted per code id (att:user:purpose:id), so the new code
                   starts with fresh tries and the old one can never get any back
      5. the text is built from the Transaction itself (type, amount, payee tail) and
         delivered through the gateway (record removed if delivery fails)

    verify(user, purpose, code, transaction or its digest)
      1. format check (digits only, right length)          -> CodeInvalid, no state touched
      2. get_and_incr: read the record and count the try against its id in one atomic
         step, BEFORE comparing (anti-tearing)
      3. record present / not used / clock not behind its issue time / not expired /
         tries left -> CodeInvalid / CodeAlreadyUsed / StoreUnavailable / CodeExpired /
         CodeAttemptsExceeded
      4. constant-time comparison of the HMAC and of the transaction digest
      5. accept    compare_and_set(record -> used): exactly one caller wins

Time: the service uses its store's clock (the Redis server's ``TIME`` for a Redis
store; SQLite refuses a process clock behind what the database has seen), and a
verifier whose clock is more than ``MAX_CLOCK_SKEW`` behind the code's issue time
refuses instead of extending the code's life.

The code itself is never stored, logged or returned: only its HMAC-SM3 under the
server key.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ebank_auth.crypto import sm3
from ebank_auth.errors import (
    CodeAlreadyUsed,
    CodeAttemptsExceeded,
    CodeExpired,
    CodeInvalid,
    ConfigurationError,
    DeliveryError,
    EncodingError,
    RateLimited,
    StoreError,
    StoreUnavailable,
)
from ebank_auth.masking import mask_phone
from ebank_auth.otp.gateway import Gateway, OutboundMessage
from ebank_auth.otp.phones import normalize_phone
from ebank_auth.otp.settings import MAX_VALIDITY, DeliveryChannel, OtpSettings, RiskTier, day_window
from ebank_auth.otp.templates import Language, render_message
from ebank_auth.store import Store
from ebank_auth.store.base import MAX_CLOCK_SKEW
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.transaction import Transaction

__all__ = [
    "CodeService",
    "IssuedCode",
    "MappingPhoneRegistry",
    "PhoneRegistry",
    "VerifiedCode",
]

_log = logging.getLogger(__name__)

_GRACE = 600.0  # a dead record lingers this long so callers get CodeExpired, not CodeInvalid


@runtime_checkable
class PhoneRegistry(Protocol):
    """Where the bank keeps each customer's registered phone number."""

    def registered_phone(self, user_id: str) -> str | None: ...


class MappingPhoneRegistry:
    """A phone registry over a mapping ``user_id -> phone`` (tests, small tools).

    Numbers are returned in E.164 form; one that is not a valid number raises
    :class:`~ebank_auth.errors.EncodingError` when it is looked up."""

    def __init__(self, phones: Mapping[str, str]) -> None:
        self._phones = dict(phones)

    def registered_phone(self, user_id: str) -> str | None:
        raw = self._phones.get(user_id)
        return None if raw is None or raw == "" else normalize_phone(raw)


@dataclass(frozen=True)
class IssuedCode:
    """What the caller learns about a sent code (never the code itself)."""

    code_id: str
    user_id: str
    purpose: str
    channel: DeliveryChannel
    phone_masked: str
    issued_at: float
    expires_at: float
    validity: float
    tx_digest: bytes | None


@dataclass(frozen=True)
class VerifiedCode:
    """A code accepted once."""

    code_id: str
    user_id: str
    purpose: str
    channel: DeliveryChannel
    tx_digest: bytes | None
    verified_at: float
    attempts: int  # tries used on this code, including the successful one


def _check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128 or "\x00" in value:
        raise ConfigurationError(f"{what} must be a non-empty string of at most 128 characters")
    return value


def _check_tx(tx: Transaction | bytes | None) -> bytes | None:
    """The 32-byte SM3 digest of ``tx`` (a Transaction or already its digest)."""
    if tx is None:
        return None
    if isinstance(tx, Transaction):
        return tx.digest()
    if not isinstance(tx, (bytes, bytearray)) or len(tx) != 32:
        raise EncodingError(
            "give the Transaction (or its 32-byte SM3 digest, Transaction.digest()) the code "
            "is bound to"
        )
    return bytes(tx)


@dataclass(frozen=True)
class _Record:
    """A stored code: ``C1`` NUL id NUL channel NUL mac-hex NUL tx-hex NUL issued NUL expires;
    an accepted code is the same bytes prefixed with ``U``."""

    code_id: str
    channel: DeliveryChannel
    mac: bytes
    tx: bytes | None
    issued_at: float
    expires_at: float
    used: bool

    def encode(self) -> bytes:
        body = b"\x00".join(
            (
                b"C1",
                self.code_id.encode(),
                self.channel.value.encode(),
                self.mac.hex().encode(),
                (self.tx or b"").hex().encode(),
                repr(self.issued_at).encode(),
                repr(self.expires_at).encode(),
            )
        )
        return b"U" + body if self.used else body

    @staticmethod
    def decode(raw: bytes) -> _Record:
        used = raw.startswith(b"U")
        try:
            parts = (raw[1:] if used else raw).split(b"\x00")
            if len(parts) != 7 or parts[0] != b"C1":
                raise ValueError("not a code record")
            tx_hex = parts[4].decode()
            return _Record(
                code_id=parts[1].decode(),
                channel=DeliveryChannel(parts[2].decode()),
                mac=bytes.fromhex(parts[3].decode()),
                tx=bytes.fromhex(tx_hex) if tx_hex else None,
                issued_at=float(parts[5]),
                expires_at=float(parts[6]),
                used=used,
            )
        except ValueError as exc:  # includes UnicodeDecodeError
            raise StoreError("stored code record is corrupt: request a new code") from exc


class CodeService:
    """Issues and verifies SMS / voice codes.

    ``server_key``: secret key (≥ 16 bytes) for HMAC-SM3 of codes and of phone
    numbers in store keys.  ``clock`` defaults to the store's clock.
    """

    def __init__(
        self,
        store: Store,
        gateway: Gateway,
        registry: PhoneRegistry,
        server_key: bytes,
        settings: OtpSettings | None = None,
        *,
        namespace: str = "otp",
        bank_name: str = "",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(server_key, (bytes, bytearray)) or len(server_key) < 16:
            raise ConfigurationError("server_key must be at least 16 random bytes")
        self.store = store
        self.gateway = gateway
        self.registry = registry
        self.settings = settings or OtpSettings()
        self._key = bytes(server_key)
        self.ns = check_namespace(namespace)
        self.bank_name = bank_name
        self.clock = clock or store.clock
        self._tz = self.settings.tz

    # -- keys -----------------------------------------------------------------------
    def _k(self, *parts: str) -> str:
        return store_key(self.ns, *parts)

    def _phone_tag(self, phone: str) -> str:
        return sm3.hmac(self._key, b"phone:" + phone.encode()).hex()[:32]

    def _mac(
        self,
        code_id: str,
        user: str,
        purpose: str,
        channel: DeliveryChannel,
        tx: bytes | None,
        code: str,
    ) -> bytes:
        # user and purpose never contain NUL (checked); the other fields are fixed-form
        msg = "\x00".join((code_id, user, purpose, channel.value, (tx or b"").hex(), code))
        return sm3.hmac(self._key, b"code:" + msg.encode())

    # -- issue ------------------------------------------------------------------------
    def issue(
        self,
        user_id: str,
        purpose: str,
        channel: DeliveryChannel = DeliveryChannel.SMS,
        transaction: Transaction | None = None,
        *,
        risk: RiskTier = RiskTier.NORMAL,
        lang: Language | str = Language.ZH,
        phone: str | None = None,
    ) -> IssuedCode:
        """Create a code and send it to the user's registered phone.

        ``transaction``: the :class:`~ebank_auth.transaction.Transaction` the code
        approves; the code is bound to its digest and the message states its type,
        amount and payee account tail (a bare digest is refused: it cannot say what
        the customer approves).  ``phone``: if given, must be the registered number
        (any spelling; else DeliveryError); the code is never sent anywhere else.
        Raises RateLimited (cooldown or daily cap), DeliveryError, EncodingError (a
        registered number that is not a valid phone number), StoreUnavailable.
        """
        user_id = _check_name("user_id", user_id)
        purpose = _check_name("purpose", purpose)
        channel = DeliveryChannel(channel)
        if transaction is not None and not isinstance(transaction, Transaction):
            raise EncodingError(
                "a code for a transaction is issued with the Transaction itself (its message "
                "states the type and amount), not a digest or summary"
            )
        tx = _check_tx(transaction)
        language = Language(lang)
        raw_registered = self.registry.registered_phone(user_id)
        if not raw_registered:
            raise DeliveryError("no registered phone number for this customer: code not sent")
        registered = normalize_phone(raw_registered)
        if phone is not None:
            try:
                given = normalize_phone(phone)
            except EncodingError:
                given = ""
            if not hmac.compare_digest(given.encode(), registered.encode()):
                raise DeliveryError(
                    "codes are sent only to the phone number registered with the bank: not sent"
                )
        s = self.settings
        now = self.clock()
        phone_tag = self._phone_tag(registered)
        # 1. resend cooldowns: one per customer (whatever the purpose) and one per handset;
        #    both are looked at before either is taken, so a refusal takes neither
        if s.resend_cooldown > 0:
            cool_keys = (self._k("cool", "user", user_id), self._k("cool", "phone", phone_tag))
            for cool_key in cool_keys:
                self._check_cooldown(cool_key, now)
            for cool_key in cool_keys:
                if not self.store.put_if_absent(
                    cool_key, repr(now + s.resend_cooldown).encode(), ttl=s.resend_cooldown
                ):
                    self._check_cooldown(cool_key, now)
                    raise RateLimited(
                        "a code was sent moments ago: wait before asking again",
                        retry_after=s.resend_cooldown,
                    )
        # 2. daily caps, counted before anything is sent; both read first so that a
        #    refusal by one does not consume the other
        day, left = day_window(now, self._tz)
        user_key = self._k("day", "user", day, user_id)
        phone_key = self._k("day", "phone", day, phone_tag)
        if self.store.get_counter(user_key) >= s.daily_limit_per_user:
            self._user_cap_refused(left)
        if self.store.get_counter(phone_key) >= s.daily_limit_per_phone:
            self._phone_cap_refused(left)
        if not self.store.incr_bounded(user_key, s.daily_limit_per_user, ttl=left).allowed:
            self._user_cap_refused(left)
        if not self.store.incr_bounded(phone_key, s.daily_limit_per_phone, ttl=left).allowed:
            self._phone_cap_refused(left)
        # 3. the code and its record: one compare_and_set replaces any earlier code; the
        #    tries are counted per code id, so nothing needs resetting
        validity = s.validity_for(risk)
        code = f"{secrets.randbelow(10**s.digits):0{s.digits}d}"
        code_id = secrets.token_hex(12)
        expires_at = now + validity
        record = _Record(
            code_id=code_id,
            channel=channel,
            mac=self._mac(code_id, user_id, purpose, channel, tx, code),
            tx=tx,
            issued_at=now,
            expires_at=expires_at,
            used=False,
        ).encode()
        rec_key = self._k("code", user_id, purpose)
        self._replace(rec_key, record, validity + _GRACE)
        # 4. delivery
        text = render_message(
            channel=channel,
            code=code,
            validity_seconds=validity,
            purpose=purpose,
            lang=language,
            transaction=transaction,
            bank_name=self.bank_name,
        )
        message = OutboundMessage(
            message_id=code_id,
            channel=channel,
            phone=registered,
            text=text,
            lang=language.value,
            purpose=purpose,
            created_at=now,
        )
        try:
            self.gateway.send(message)
        except DeliveryError:
            self.store.compare_and_set(rec_key, record, None)
            raise
        except Exception as exc:  # a gateway bug must not leave a live undelivered code
            self.store.compare_and_set(rec_key, record, None)
            raise DeliveryError(f"gateway failed: {type(exc).__name__}") from exc
        _log.info(
            "issued %s code %s for user %s to %s",
            channel.value,
            code_id,
            user_id,
            mask_phone(registered),
        )
        return IssuedCode(
            code_id=code_id,
            user_id=user_id,
            purpose=purpose,
            channel=channel,
            phone_masked=mask_phone(registered),
            issued_at=now,
            expires_at=expires_at,
            validity=validity,
            tx_digest=tx,
        )

    def _check_cooldown(self, key: str, now: float) -> None:
        held = self.store.get(key)
        if held is None:
            return
        try:
            retry = max(0.0, float(held) - now)
        except ValueError:
            retry = self.settings.resend_cooldown
        raise RateLimited(
            f"a code was sent moments ago: wait {int(retry) + 1} s before asking again",
            retry_after=retry,
        )

    def _user_cap_refused(self, left: float) -> None:
        raise RateLimited(
            f"daily limit of {self.settings.daily_limit_per_user} codes reached for this "
            "customer: try again tomorrow",
            retry_after=left,
        )

    def _phone_cap_refused(self, left: float) -> None:
        raise RateLimited(
            f"daily limit of {self.settings.daily_limit_per_phone} codes reached for this phone "
            "number: try again tomorrow",
            retry_after=left,
        )

    def _replace(self, key: str, record: bytes, ttl: float) -> None:
        for _ in range(20):
            current = self.store.get(key)
            if self.store.compare_and_set(key, current, record, ttl=ttl):
                return
        raise StoreError("could not store the new code (too much contention): try again")

    # -- verify -----------------------------------------------------------------------
    def verify(
        self,
        user_id: str,
        purpose: str,
        code: str,
        transaction: Transaction | bytes | None = None,
    ) -> VerifiedCode:
        """Accept ``code`` once for (user, purpose) and this exact transaction (the
        Transaction or its 32-byte digest).

        Raises CodeInvalid (wrong code, wrong transaction, malformed, none pending),
        CodeExpired, CodeAlreadyUsed, CodeAttemptsExceeded, StoreUnavailable (also when
        this server's clock is behind the code's issue time).
        """
        user_id = _check_name("user_id", user_id)
        purpose = _check_name("purpose", purpose)
        tx = _check_tx(transaction)
        s = self.settings
        if (
            not isinstance(code, str)
            or len(code) != s.digits
            or not code.isascii()
            or not code.isdigit()
        ):
            raise CodeInvalid(f"the code must be exactly {s.digits} digits: check it and retry")
        rec_key = self._k("code", user_id, purpose)
        # anti-tearing: the try is counted against the record's code id and persisted, in
        # the same atomic step that reads the record, before any comparison
        for _ in range(3):
            peek = self.store.get(rec_key)
            if peek is None:
                raise CodeInvalid("no code is pending for this operation: request a new one")
            peek_id = _Record.decode(peek).code_id
            record, attempt = self.store.get_and_incr(
                rec_key,
                self._k("att", user_id, purpose, peek_id),
                s.max_attempts,
                ttl=MAX_VALIDITY + _GRACE,
            )
            if record is None:
                raise CodeInvalid("no code is pending for this operation: request a new one")
            rec = _Record.decode(record)
            if rec.code_id == peek_id:
                break
            # a new code replaced the one whose tries we counted: count against the new one
        else:
            raise CodeInvalid("a new code was sent meanwhile: enter the newest code")
        code_id = rec.code_id
        if rec.used:
            raise CodeAlreadyUsed()
        now = self.clock()
        if now < rec.issued_at - MAX_CLOCK_SKEW:
            _log.error(
                "clock of this server is %.1f s behind the issue time of code %s: refused",
                rec.issued_at - now,
                code_id,
            )
            raise StoreUnavailable(
                "this server's clock is behind the time the code was issued: refused; "
                "synchronise the clocks of the application servers (NTP)"
            )
        if now >= rec.expires_at:
            raise CodeExpired()
        if not attempt.allowed:
            raise CodeAttemptsExceeded()
        channel = rec.channel
        expected_tx = rec.tx
        mac = self._mac(code_id, user_id, purpose, channel, expected_tx, code)
        code_ok = hmac.compare_digest(mac, rec.mac)
        tx_ok = hmac.compare_digest(tx or b"-", expected_tx or b"-")
        if not (code_ok and tx_ok):
            left = s.max_attempts - attempt.value
            if not tx_ok:
                msg = "the code was issued for a different transaction"
            else:
                msg = "the code is wrong"
            if left <= 0:
                raise CodeAttemptsExceeded(f"{msg}; no tries left for this code: request a new one")
            raise CodeInvalid(f"{msg}: {left} tr{'y' if left == 1 else 'ies'} left")
        # consume once: mark used in the same atomic swap, so exactly one caller wins
        ttl = max(rec.expires_at - now, 0.0) + _GRACE
        if not self.store.compare_and_set(rec_key, record, b"U" + record, ttl=ttl):
            raise CodeAlreadyUsed()
        _log.info("accepted code %s for user %s", code_id, user_id)
        return VerifiedCode(
            code_id=code_id,
            user_id=user_id,
            purpose=purpose,
            channel=channel,
            tx_digest=expected_tx,
            verified_at=now,
            attempts=attempt.value,
        )

    def cancel(self, user_id: str, purpose: str) -> None:
        """Invalidate any pending code for (user, purpose)."""
        self.store.delete(self._k("code", user_id, purpose))

    def sent_today(self, user_id: str) -> int:
        """Codes issued to ``user_id`` in the current local day."""
        day, _ = day_window(self.clock(), self._tz)
        return self.store.get_counter(self._k("day", "user", day, user_id))
