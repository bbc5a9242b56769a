"""SMS and voice one-time codes bound to a transaction.

Life of a code (all state in a :class:`~ebank_auth.store.Store`, so several app
processes share it and it survives restarts)::

    issue(user, purpose, channel, tx_digest)
      1. phone := registry.registered_phone(user)        (never a caller-given number)
      2. cooldown  put_if_absent(cool:user:purpose, ttl=resend_cooldown)   -> RateLimited
      3. caps      incr_bounded(day:user:DATE) and (day:phone:DATE), ttl = end of local day
      4. record    {id, HMAC-SM3(server_key, id|user|purpose|channel|tx|code), tx, expiry}
                   replaces any earlier code of the same (user, purpose)
      5. deliver through the gateway (record removed if delivery fails)

    verify(user, purpose, code, tx_digest)
      1. format check (digits only, right length)          -> CodeInvalid, no state touched
      2. get_and_incr: read the record and count the try in one atomic step, BEFORE
         comparing (anti-tearing); att:user:purpose is reset when a new code is issued
      3. record present / not used / not expired / tries left
         -> CodeInvalid / CodeAlreadyUsed / CodeExpired / CodeAttemptsExceeded
      4. constant-time comparison of the HMAC and of the transaction digest
      5. accept    compare_and_set(record -> deleted): exactly one caller wins

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
)
from ebank_auth.otp.gateway import Gateway, OutboundMessage, mask_phone
from ebank_auth.otp.settings import MAX_VALIDITY, DeliveryChannel, OtpSettings, RiskTier, day_window
from ebank_auth.otp.templates import Language, TransactionSummary, render_message
from ebank_auth.store import Store
from ebank_auth.store.keys import check_namespace, store_key

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
    """A phone registry over a mapping ``user_id -> phone`` (tests, small tools)."""

    def __init__(self, phones: Mapping[str, str]) -> None:
        self._phones = dict(phones)

    def registered_phone(self, user_id: str) -> str | None:
        return self._phones.get(user_id)


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


def _check_tx(tx_digest: bytes | None) -> bytes | None:
    if tx_digest is None:
        return None
    if not isinstance(tx_digest, (bytes, bytearray)) or len(tx_digest) != 32:
        raise EncodingError("tx_digest must be the 32-byte SM3 digest of the transaction")
    return bytes(tx_digest)


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
        tx_digest: bytes | None = None,
        *,
        summary: TransactionSummary | None = None,
        risk: RiskTier = RiskTier.NORMAL,
        lang: Language | str = Language.ZH,
        phone: str | None = None,
    ) -> IssuedCode:
        """Create a code and send it to the user's registered phone.

        ``phone``: if given, must equal the registered number (else DeliveryError);
        the code is never sent anywhere else.  Voice codes for a transaction need a
        ``summary`` (type and amount are spoken).  Raises RateLimited (cooldown or
        daily cap), DeliveryError, StoreUnavailable.
        """
        user_id = _check_name("user_id", user_id)
        purpose = _check_name("purpose", purpose)
        channel = DeliveryChannel(channel)
        tx = _check_tx(tx_digest)
        language = Language(lang)
        if channel is DeliveryChannel.VOICE and tx is not None and summary is None:
            raise ConfigurationError(
                "a voice code for a transaction must read out the transaction's type and "
                "amount: give its summary (TransactionSummary) when issuing the code"
            )
        registered = self.registry.registered_phone(user_id)
        if not registered:
            raise DeliveryError("no registered phone number for this customer: code not sent")
        if phone is not None and not hmac.compare_digest(phone.encode(), registered.encode()):
            raise DeliveryError(
                "codes are sent only to the phone number registered with the bank: not sent"
            )
        s = self.settings
        now = self.clock()
        # 1. resend cooldown (per user and purpose)
        if s.resend_cooldown > 0:
            until = now + s.resend_cooldown
            cool_key = self._k("cool", user_id, purpose)
            if not self.store.put_if_absent(cool_key, repr(until).encode(), ttl=s.resend_cooldown):
                held = self.store.get(cool_key)
                retry = max(0.0, float(held) - now) if held else s.resend_cooldown
                raise RateLimited(
                    f"a code was sent moments ago: wait {int(retry) + 1} s before asking again",
                    retry_after=retry,
                )
        # 2. daily caps, counted before anything is sent
        day, left = day_window(now, self._tz)
        user_cap = self.store.incr_bounded(
            self._k("day", "user", day, user_id), s.daily_limit_per_user, ttl=left
        )
        if not user_cap.allowed:
            raise RateLimited(
                f"daily limit of {s.daily_limit_per_user} codes reached for this customer: "
                "try again tomorrow",
                retry_after=left,
            )
        phone_cap = self.store.incr_bounded(
            self._k("day", "phone", day, self._phone_tag(registered)),
            s.daily_limit_per_phone,
            ttl=left,
        )
        if not phone_cap.allowed:
            raise RateLimited(
                f"daily limit of {s.daily_limit_per_phone} codes reached for this phone number: "
                "try again tomorrow",
                retry_after=left,
            )
        # 3. the code and its record
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
        self.store.reset_counter(self._k("att", user_id, purpose))  # a new code, new tries
        self._replace(rec_key, record, validity + _GRACE)
        # 4. delivery
        text = render_message(
            channel=channel,
            code=code,
            validity_seconds=validity,
            purpose=purpose,
            lang=language,
            summary=summary,
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

    def _replace(self, key: str, record: bytes, ttl: float) -> None:
        for _ in range(20):
            current = self.store.get(key)
            if self.store.compare_and_set(key, current, record, ttl=ttl):
                return
        raise StoreError("could not store the new code (too much contention): try again")

    # -- verify -----------------------------------------------------------------------
    def verify(
        self, user_id: str, purpose: str, code: str, tx_digest: bytes | None = None
    ) -> VerifiedCode:
        """Accept ``code`` once for (user, purpose) and this exact transaction.

        Raises CodeInvalid (wrong code, wrong transaction, malformed, none pending),
        CodeExpired, CodeAlreadyUsed, CodeAttemptsExceeded, StoreUnavailable.
        """
        user_id = _check_name("user_id", user_id)
        purpose = _check_name("purpose", purpose)
        tx = _check_tx(tx_digest)
        s = self.settings
        if (
            not isinstance(code, str)
            or len(code) != s.digits
            or not code.isascii()
            or not code.isdigit()
        ):
            raise CodeInvalid(f"the code must be exactly {s.digits} digits: check it and retry")
        rec_key = self._k("code", user_id, purpose)
        # anti-tearing: the try is counted and persisted, in the same atomic step that
        # reads the record, before any comparison
        record, attempt = self.store.get_and_incr(
            rec_key, self._k("att", user_id, purpose), s.max_attempts, ttl=MAX_VALIDITY + _GRACE
        )
        if record is None:
            raise CodeInvalid("no code is pending for this operation: request a new one")
        rec = _Record.decode(record)
        code_id = rec.code_id
        if rec.used:
            raise CodeAlreadyUsed()
        now = self.clock()
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
