"""``ebank-auth otp``: SMS/voice codes, TOTP/HOTP tokens and GM/T 0021 passwords.

Exit codes: 0 success / code accepted, 1 code refused (wrong, expired, used, rate
limited), 2 usage or input error.  State lives in the store named by ``--store``
(env ``EBANK_AUTH_STORE``; default ``sqlite://~/.ebank-auth/state.db``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from ebank_auth.errors import EbankAuthError, OtpError, PasswordError, StoreError
from ebank_auth.otp import (
    AuthenticatorKind,
    AuthenticatorService,
    AuthenticatorSettings,
    CodeService,
    DeliveryChannel,
    FileGateway,
    Language,
    MappingPhoneRegistry,
    OtpAlgorithm,
    SecretSealer,
    TransactionSummary,
    sm3_otp,
    time_factor,
)
from ebank_auth.otp.qr import qr_terminal
from ebank_auth.store import Store, open_store

_T = TypeVar("_T")

_DEFAULT_STORE = f"sqlite://{Path.home() / '.ebank-auth' / 'state.db'}"


def _fail(msg: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _open(url: str) -> Store:
    if url == _DEFAULT_STORE:
        (Path.home() / ".ebank-auth").mkdir(mode=0o700, exist_ok=True)
    return open_store(url)


def _run(fn: Callable[[], _T]) -> _T:
    """Run a library call: refusals exit 1, other library errors exit 2."""
    try:
        return fn()
    except (OtpError, PasswordError) as exc:
        _fail(str(exc), 1)
    except StoreError as exc:
        _fail(str(exc), 1)
    except EbankAuthError as exc:
        _fail(str(exc), 2)


def _hex(value: str, what: str, length: int | None = None) -> bytes:
    try:
        data = bytes.fromhex(value)
    except ValueError:
        _fail(f"{what} must be hexadecimal")
    if length is not None and len(data) != length:
        _fail(f"{what} must be {length} bytes ({2 * length} hex digits)")
    return data


def _sealer(spec: str | None) -> SecretSealer:
    """``HEX`` (version 1) or ``V:HEX,V:HEX`` (newest version is current)."""
    if not spec:
        _fail("a sealing key is needed: --sealing-key HEX or EBANK_AUTH_SEALING_KEY")
    keys: dict[int, bytes] = {}
    for part in spec.split(","):
        version, _, key = part.rpartition(":")
        try:
            number = int(version) if version else 1
        except ValueError:
            _fail("sealing key entries look like VERSION:HEX")
        keys[number] = _hex(key, "sealing key", 16)
    return _run(lambda: SecretSealer(keys))


store_option = click.option(
    "--store",
    "store_url",
    envvar="EBANK_AUTH_STORE",
    default=_DEFAULT_STORE,
    show_default=True,
    help="State store URL (memory://, sqlite:///path.db, redis://host:port/0).",
)
sealing_option = click.option(
    "--sealing-key",
    envvar="EBANK_AUTH_SEALING_KEY",
    help="SM4 key(s) sealing token secrets: HEX or VERSION:HEX,VERSION:HEX.",
)


@click.group("otp")
def otp() -> None:
    """One-time codes: SMS/voice, TOTP/HOTP tokens, GM/T 0021 SM3 passwords."""


# --------------------------------------------------------------------------- tokens


@otp.group("totp")
def totp() -> None:
    """Dynamic-password tokens (TOTP/HOTP, RFC 6238/4226, or GM/T 0021 with SM3)."""


@totp.command("enroll")
@store_option
@sealing_option
@click.option("--user", required=True, help="Customer id.")
@click.option("--account", help="Label shown in the authenticator (default: the user id).")
@click.option("--kind", type=click.Choice(["totp", "hotp"]), default="totp", show_default=True)
@click.option(
    "--algorithm",
    type=click.Choice([a.value for a in OtpAlgorithm]),
    default="SHA1",
    show_default=True,
)
@click.option("--digits", type=int, default=6, show_default=True)
@click.option("--period", type=int, default=30, show_default=True)
@click.option("--issuer", default="ebank-auth", show_default=True)
@click.option("--replace", is_flag=True, help="Replace an existing token.")
@click.option("--qr-svg", type=click.Path(dir_okay=False), help="Write the QR code as SVG here.")
@click.option("--qr/--no-qr", "show_qr", default=True, help="Draw the QR code in the terminal.")
def totp_enroll(
    store_url: str,
    sealing_key: str | None,
    user: str,
    account: str | None,
    kind: str,
    algorithm: str,
    digits: int,
    period: int,
    issuer: str,
    replace: bool,
    qr_svg: str | None,
    show_qr: bool,
) -> None:
    """Enrol a token; prints the otpauth:// URI and the secret (shown once)."""
    sealer = _sealer(sealing_key)
    settings = _run(
        lambda: AuthenticatorSettings(
            kind=AuthenticatorKind(kind),
            algorithm=OtpAlgorithm(algorithm),
            digits=digits,
            period=period,
            issuer=issuer,
        )
    )
    store = _run(lambda: _open(store_url))
    try:
        service = AuthenticatorService(store, sealer, settings)
        enrolment = _run(lambda: service.enroll(user, account, replace=replace))
    finally:
        store.close()
    click.echo(f"uri:    {enrolment.uri}")
    click.echo(f"secret: {enrolment.secret_b32}")
    if qr_svg:
        try:
            fd = os.open(qr_svg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(enrolment.qr_svg())
        except OSError as exc:
            _fail(f"cannot write {qr_svg}: {exc.strerror}")
    if show_qr:
        click.echo(qr_terminal(enrolment.uri))


@totp.command("verify")
@store_option
@sealing_option
@click.option("--user", required=True)
@click.option("--code", required=True)
@click.option("--at", "at", type=float, help="Verify at this Unix time instead of now.")
@click.option("--window", type=int, default=1, show_default=True, help="TOTP steps ± now.")
def totp_verify(
    store_url: str, sealing_key: str | None, user: str, code: str, at: float | None, window: int
) -> None:
    """Verify a token code (exit 0 accepted, 1 refused)."""
    sealer = _sealer(sealing_key)
    settings = _run(lambda: AuthenticatorSettings(window=window))
    store = _run(lambda: _open(store_url))
    try:
        result = _run(
            lambda: AuthenticatorService(store, sealer, settings).verify(user, code, at=at)
        )
    finally:
        store.close()
    click.echo(f"accepted: counter {result.counter} (drift {result.drift:+d})")


@totp.command("resync")
@store_option
@sealing_option
@click.option("--user", required=True)
@click.argument("code1")
@click.argument("code2")
def totp_resync(store_url: str, sealing_key: str | None, user: str, code1: str, code2: str) -> None:
    """Resynchronise an HOTP token with two consecutive codes."""
    sealer = _sealer(sealing_key)
    store = _run(lambda: _open(store_url))
    try:
        result = _run(lambda: AuthenticatorService(store, sealer).resync(user, code1, code2))
    finally:
        store.close()
    click.echo(f"resynchronised: next counter after {result.counter}")


@otp.command("sm3")
@click.option("--key", required=True, help="Seed key K, hex (≥ 16 bytes).")
@click.option("--time", "t", type=int, required=True, help="Unix time t.")
@click.option("--step", type=int, default=1, show_default=True, help="Tc: T = floor(t / Tc).")
@click.option("--counter", type=int, default=0, show_default=True, help="Event counter C.")
@click.option("--challenge", default="", help="Challenge Q (ASCII).")
@click.option("--digits", type=int, default=6, show_default=True)
def sm3_cmd(key: str, t: int, step: int, counter: int, challenge: str, digits: int) -> None:
    """Compute a GM/T 0021 SM3 one-time password."""
    seed = _hex(key, "--key")
    click.echo(_run(lambda: sm3_otp(seed, time_factor(t, step), counter, challenge, digits)))


# --------------------------------------------------------------------------- SMS / voice

server_key_option = click.option(
    "--server-key",
    envvar="EBANK_AUTH_OTP_KEY",
    required=True,
    help="HMAC-SM3 server key, hex (≥ 16 bytes); env EBANK_AUTH_OTP_KEY.",
)


@otp.group("sms")
def sms() -> None:
    """SMS / voice codes through a file outbox gateway."""


def _code_service(
    store: Store, outbox: str, server_key: str, user: str, phone: str | None
) -> CodeService:
    key = _hex(server_key, "--server-key")
    registry = MappingPhoneRegistry({user: phone} if phone else {})
    return _run(lambda: CodeService(store, FileGateway(outbox), registry, key))


@sms.command("send")
@store_option
@server_key_option
@click.option(
    "--outbox",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory the file gateway writes messages to.",
)
@click.option("--user", required=True)
@click.option("--phone", required=True, help="The customer's registered phone number.")
@click.option("--purpose", default="login", show_default=True)
@click.option("--channel", type=click.Choice(["sms", "voice"]), default="sms", show_default=True)
@click.option("--tx-digest", help="SM3 digest of the transaction (hex, 32 bytes).")
@click.option("--tx-kind", help="Transaction type spoken in voice codes (e.g. 转账).")
@click.option("--amount", help="Transaction amount spoken in voice codes.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def sms_send(
    store_url: str,
    server_key: str,
    outbox: str,
    user: str,
    phone: str,
    purpose: str,
    channel: str,
    tx_digest: str | None,
    tx_kind: str | None,
    amount: str | None,
    lang: str,
) -> None:
    """Issue a code and write the message to the outbox."""
    tx = _hex(tx_digest, "--tx-digest", 32) if tx_digest else None
    summary = None
    if tx_kind or amount:
        if not (tx_kind and amount):
            _fail("--tx-kind and --amount go together")
        summary = _run(lambda: TransactionSummary(kind=tx_kind or "", amount=amount or ""))
    store = _run(lambda: _open(store_url))
    try:
        service = _code_service(store, outbox, server_key, user, phone)
        issued = _run(
            lambda: service.issue(
                user, purpose, DeliveryChannel(channel), tx, summary=summary, lang=Language(lang)
            )
        )
    finally:
        store.close()
    click.echo(
        f"sent {issued.channel.value} code {issued.code_id} to {issued.phone_masked}, "
        f"valid {int(issued.validity)} s"
    )


@sms.command("verify")
@store_option
@server_key_option
@click.option("--user", required=True)
@click.option("--purpose", default="login", show_default=True)
@click.option("--code", required=True)
@click.option("--tx-digest", help="SM3 digest of the transaction (hex, 32 bytes).")
def sms_verify(
    store_url: str, server_key: str, user: str, purpose: str, code: str, tx_digest: str | None
) -> None:
    """Verify a code (exit 0 accepted, 1 refused)."""
    tx = _hex(tx_digest, "--tx-digest", 32) if tx_digest else None
    store = _run(lambda: _open(store_url))
    try:
        service = _code_service(store, os.devnull, server_key, user, None)
        result = _run(lambda: service.verify(user, purpose, code, tx))
    finally:
        store.close()
    click.echo(f"accepted: code {result.code_id} ({result.channel.value})")
