"""``ebank-auth otp``: SMS/voice codes, TOTP/HOTP tokens and GM/T 0021 passwords.

Exit codes as every command (see :mod:`ebank_auth.cli`): 0 success / code
accepted, 1 code refused (wrong, expired, used, rate limited), 2 usage or input
error (also a sealing key that does not open the stored secret), 3 the store or
the SMS gateway is unavailable.  State lives in the store named by ``--store``
(env ``EBANK_AUTH_STORE``; default: SQLite under :func:`ebank_auth.paths.home`).

Secrets (sealing keys, the code server key, a GM/T 0021 seed) are never taken as
command-line arguments, which other local users can read in the process list and
which shells keep in their history: each comes from a file (``--…-file PATH``,
hex text) or from its environment variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from ebank_auth.errors import ConfigurationError, DecryptionError, EncodingError
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
    sm3_otp,
    time_factor,
)
from ebank_auth.otp.qr import qr_terminal
from ebank_auth.store import Store
from ebank_auth.transaction import Transaction

from ._output import Group, emit, examples, json_option, renamed_option
from ._store import STORE_HELP, open_target


def _fail(msg: str) -> NoReturn:
    raise click.UsageError(msg)


@contextmanager
def _unsealing() -> Iterator[None]:
    """A secret that does not open is the operator's key, not the customer's code."""
    try:
        yield
    except DecryptionError as exc:
        raise ConfigurationError(
            "the sealing key does not open this user's token secret: check --sealing-key-file "
            "(or EBANK_AUTH_SEALING_KEY) and its version"
        ) from exc


@contextmanager
def _store(url: str | None) -> Iterator[Store]:
    store = open_target(url)
    try:
        yield store
    finally:
        store.close()


def _hex(value: str, what: str, length: int | None = None) -> bytes:
    try:
        data = bytes.fromhex(value)
    except ValueError:
        _fail(f"{what} must be hexadecimal")
    if length is not None and len(data) != length:
        _fail(f"{what} must be {length} bytes ({2 * length} hex digits)")
    return data


def _secret_text(path: str | None, envvar: str, what: str, option: str) -> str:
    """A secret from the file ``path`` or else environment variable ``envvar``."""
    if path:
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {what} from {path}: {exc}")
        if not text:
            _fail(f"{path} is empty: it must hold the {what} as hex")
        return text
    value = os.environ.get(envvar, "").strip()
    if not value:
        _fail(f"the {what} is needed: {option} FILE (hex in a file) or {envvar}")
    return value


def _sealer(sealing_key_file: str | None) -> SecretSealer:
    """``HEX`` (version 1) or ``V:HEX,V:HEX`` (newest version is current)."""
    spec = _secret_text(
        sealing_key_file, "EBANK_AUTH_SEALING_KEY", "sealing key", "--sealing-key-file"
    )
    keys: dict[int, bytes] = {}
    for part in spec.split(","):
        version, _, key = part.rpartition(":")
        try:
            number = int(version) if version else 1
        except ValueError:
            _fail("sealing key entries look like VERSION:HEX")
        keys[number] = _hex(key, "sealing key", 16)
    return SecretSealer(keys)


store_option = click.option("--store", "store_url", default=None, help=STORE_HELP)
sealing_option = click.option(
    "--sealing-key-file",
    "sealing_key",
    type=click.Path(dir_okay=False),
    help="File holding the SM4 key(s) sealing token secrets: HEX or VERSION:HEX,VERSION:HEX "
    "(or env EBANK_AUTH_SEALING_KEY; never on the command line).",
)


@click.group("otp", cls=Group)
def otp() -> None:
    """One-time codes: SMS/voice, TOTP/HOTP tokens, GM/T 0021 SM3 passwords."""


# --------------------------------------------------------------------------- tokens


@otp.group("totp")
def totp() -> None:
    """Dynamic-password tokens (TOTP/HOTP, RFC 6238/4226, or GM/T 0021 with SM3)."""


@totp.command(
    "enroll",
    epilog=examples(
        "EBANK_AUTH_SEALING_KEY=00112233445566778899aabbccddeeff "
        "ebank-auth otp totp enroll --user alice",
        "ebank-auth otp totp enroll --sealing-key-file sealing.key --user alice --kind hotp "
        "--no-qr --json",
    ),
)
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
@click.option(
    "--qr-svg-out", "qr_svg", type=click.Path(dir_okay=False), help="Write the QR code as SVG here."
)
@renamed_option("--qr-svg", "--qr-svg-out")
@click.option("--qr/--no-qr", "show_qr", default=True, help="Draw the QR code in the terminal.")
@json_option
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
    as_json: bool,
) -> None:
    """Enrol a token; prints the otpauth:// URI and the secret (shown once)."""
    sealer = _sealer(sealing_key)
    settings = AuthenticatorSettings(
        kind=AuthenticatorKind(kind),
        algorithm=OtpAlgorithm(algorithm),
        digits=digits,
        period=period,
        issuer=issuer,
    )
    with _store(store_url) as store:
        service = AuthenticatorService(store, sealer, settings)
        enrolment = service.enroll(user, account, replace=replace)
    if qr_svg:
        fd = os.open(qr_svg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(enrolment.qr_svg())
    lines = [f"uri:    {enrolment.uri}", f"secret: {enrolment.secret_b32}"]
    if show_qr:
        lines.append(qr_terminal(enrolment.uri))
    emit({"user": user, "uri": enrolment.uri, "secret": enrolment.secret_b32}, lines)


@totp.command(
    "verify",
    epilog=examples(
        "ebank-auth otp totp verify --user alice --code 492039",
        "ebank-auth otp totp verify --user alice --code 492039 --store redis://127.0.0.1/0 --json",
    ),
)
@store_option
@sealing_option
@click.option("--user", required=True)
@click.option("--code", required=True)
@click.option(
    "--window", type=int, default=1, show_default=True, help="TOTP steps ± now (at most 60 s)."
)
@json_option
def totp_verify(
    store_url: str | None,
    sealing_key: str | None,
    user: str,
    code: str,
    window: int,
    as_json: bool,
) -> None:
    """Verify a token code at the store's time (exit 0 accepted, 1 refused)."""
    sealer = _sealer(sealing_key)
    settings = AuthenticatorSettings(window=window)
    with _store(store_url) as store, _unsealing():
        result = AuthenticatorService(store, sealer, settings).verify(user, code)
    emit(
        {"accepted": True, "counter": result.counter, "drift": result.drift},
        f"accepted: counter {result.counter} (drift {result.drift:+d})",
    )


@totp.command("resync", epilog=examples("ebank-auth otp totp resync --user alice 755224 287082"))
@store_option
@sealing_option
@click.option("--user", required=True)
@click.argument("code1")
@click.argument("code2")
@json_option
def totp_resync(
    store_url: str | None, sealing_key: str | None, user: str, code1: str, code2: str, as_json: bool
) -> None:
    """Resynchronise an HOTP token with two consecutive codes."""
    sealer = _sealer(sealing_key)
    with _store(store_url) as store, _unsealing():
        result = AuthenticatorService(store, sealer).resync(user, code1, code2)
    emit(
        {"resynchronised": True, "counter": result.counter},
        f"resynchronised: next counter after {result.counter}",
    )


@otp.command(
    "sm3",
    epilog=examples(
        "ebank-auth otp sm3 --seed-file seed.hex --time 1700000000 --step 60",
        "EBANK_AUTH_SM3_KEY=1234567890abcdef1234567890abcdef ebank-auth otp sm3 --time 0 "
        "--challenge 5678 --json",
    ),
)
@click.option(
    "--seed-file",
    "key_file",
    type=click.Path(dir_okay=False),
    help="File holding the seed key K as hex (≥ 16 bytes); or env EBANK_AUTH_SM3_KEY.",
)
@renamed_option("--key", "--seed-file")
@click.option("--time", "t", type=int, required=True, help="Unix time t.")
@click.option("--step", type=int, default=1, show_default=True, help="Tc: T = floor(t / Tc).")
@click.option("--counter", type=int, default=0, show_default=True, help="Event counter C.")
@click.option("--challenge", default="", help="Challenge Q (ASCII).")
@click.option("--digits", type=int, default=6, show_default=True)
@json_option
def sm3_cmd(
    key_file: str | None,
    t: int,
    step: int,
    counter: int,
    challenge: str,
    digits: int,
    as_json: bool,
) -> None:
    """Compute a GM/T 0021 SM3 one-time password."""
    seed = _hex(_secret_text(key_file, "EBANK_AUTH_SM3_KEY", "seed key", "--seed-file"), "seed key")
    code = sm3_otp(seed, time_factor(t, step), counter, challenge, digits)
    emit({"code": code}, code)


# --------------------------------------------------------------------------- SMS / voice

server_key_option = click.option(
    "--server-key-file",
    "server_key",
    type=click.Path(dir_okay=False),
    help="File holding the HMAC-SM3 server key as hex (≥ 16 bytes); or env EBANK_AUTH_OTP_KEY.",
)


def _transaction(path: str) -> Transaction:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read the transaction file {path}: {exc}")
    except ValueError as exc:
        raise EncodingError(f"the transaction file {path} is not JSON: {exc}") from None
    return Transaction.from_dict(doc)


@otp.group("sms")
def sms() -> None:
    """SMS / voice codes through a file outbox gateway."""


def _code_service(
    store: Store, outbox: str, server_key: str | None, user: str, phone: str | None
) -> CodeService:
    text = _secret_text(server_key, "EBANK_AUTH_OTP_KEY", "server key", "--server-key-file")
    key = _hex(text, "server key")
    registry = MappingPhoneRegistry({user: phone} if phone else {})
    return CodeService(store, FileGateway(outbox), registry, key)


@sms.command(
    "send",
    epilog=examples(
        "EBANK_AUTH_OTP_KEY=abab…ab ebank-auth otp sms send --outbox ./outbox --user alice "
        "--phone 13800000001",
        "ebank-auth otp sms send --server-key-file otp.key --outbox ./outbox --user alice "
        "--phone 13800000001 --channel voice --purpose transaction --transaction tx.json --json",
    ),
)
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
@click.option(
    "--transaction",
    "transaction_file",
    type=click.Path(dir_okay=False),
    help="JSON file of the transaction the code approves (Transaction.to_dict form); the "
    "message states its type, amount and payee account tail.",
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@json_option
def sms_send(
    store_url: str | None,
    server_key: str | None,
    outbox: str,
    user: str,
    phone: str,
    purpose: str,
    channel: str,
    transaction_file: str | None,
    lang: str,
    as_json: bool,
) -> None:
    """Issue a code and write the message to the outbox."""
    transaction = _transaction(transaction_file) if transaction_file else None
    with _store(store_url) as store:
        service = _code_service(store, outbox, server_key, user, phone)
        issued = service.issue(
            user, purpose, DeliveryChannel(channel), transaction, lang=Language(lang)
        )
    emit(
        {"code_id": issued.code_id, "channel": issued.channel.value,
         "phone": issued.phone_masked, "validity": issued.validity},
        f"sent {issued.channel.value} code {issued.code_id} to {issued.phone_masked}, "
        f"valid {int(issued.validity)} s",
    )  # fmt: skip


@sms.command(
    "verify",
    epilog=examples(
        "ebank-auth otp sms verify --user alice --code 123456",
        "ebank-auth otp sms verify --user alice --purpose transfer --code 123456 "
        "--tx-digest <64 hex> --json",
    ),
)
@store_option
@server_key_option
@click.option("--user", required=True)
@click.option("--purpose", default="login", show_default=True)
@click.option("--code", required=True)
@click.option("--tx-digest", help="SM3 digest of the transaction (hex, 32 bytes).")
@click.option(
    "--transaction",
    "transaction_file",
    type=click.Path(dir_okay=False),
    help="JSON file of the transaction (instead of --tx-digest).",
)
@json_option
def sms_verify(
    store_url: str | None,
    server_key: str | None,
    user: str,
    purpose: str,
    code: str,
    tx_digest: str | None,
    transaction_file: str | None,
    as_json: bool,
) -> None:
    """Verify a code (exit 0 accepted, 1 refused)."""
    if tx_digest and transaction_file:
        _fail("give either --tx-digest or --transaction, not both")
    tx = _hex(tx_digest, "--tx-digest", 32) if tx_digest else None
    if transaction_file:
        tx = _transaction(transaction_file).digest()
    with _store(store_url) as store:
        service = _code_service(store, os.devnull, server_key, user, None)
        result = service.verify(user, purpose, code, tx)
    emit(
        {"accepted": True, "code_id": result.code_id, "channel": result.channel.value},
        f"accepted: code {result.code_id} ({result.channel.value})",
    )
