"""``ebank-auth token``: drive a USB Key / V盾 (or the software token) from the command line.

Every command selects the token (``--reader NAME`` for PC/SC, ``--hid PATH`` for
HID), checks it is genuine against the manufacturer root(s) (``--trust-root``,
``--firmware-allowlist``, or ``$EBANK_AUTH_TOKEN_ROOTS``; the software token's *test*
manufacturer only when asked with ``--emulator``) and opens the secure channel before
doing anything else.

PINs are never taken as command-line values: they come from a hidden prompt,
from ``--pin-file`` (first line), or from ``$EBANK_AUTH_PIN`` (admin:
``--admin-pin-file`` / ``$EBANK_AUTH_ADMIN_PIN``; new PIN: ``--new-pin-file`` /
``$EBANK_AUTH_NEW_PIN``).

Exit codes as every command (see :mod:`ebank_auth.cli`): 0 success, 1 refused
(wrong PIN, locked, rejected, not genuine), 2 usage or input error, 3 pcscd, the
reader or the token is unavailable (checked before the manufacturer roots, so a
first run without pcscd says so).  Every command accepts ``--json``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ebank_auth.errors import (
    ConfigurationError,
    EncodingError,
    KeyAlreadyExists,
    TokenError,
    TokenNotGenuine,
)
from ebank_auth.usbkey.protocol import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    PinRef,
)

from ._output import Group, emit, examples, info, json_option, json_requested, verdict

if TYPE_CHECKING:
    from ebank_auth.usbkey.attestation import TrustConfig
    from ebank_auth.usbkey.conformance import ConformanceReport
    from ebank_auth.usbkey.connect import TransportName
    from ebank_auth.usbkey.token import Token

__all__ = ["token"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Options:
    reader: str | None
    hid: str | None
    trust_roots: tuple[Path, ...]
    allowlist: Path | None
    emulator_state: Path | None
    skip_attestation: bool
    emulator: bool = False
    backend: str = "native"
    pkcs11_module: Path | None = None
    pkcs11_token: str | None = None
    skf_library: Path | None = None
    skf_device: str | None = None
    skf_application: str | None = None


def _fail(message: str, code: int = 1) -> NoReturn:
    """Raise for the one handler in :mod:`ebank_auth.cli`: 2 a usage error, else a refusal."""
    if code == 2:
        raise click.UsageError(message)
    raise TokenError(message)


def _read_secret(file: Path | None, env: str, prompt: str, confirm: bool = False) -> str:
    """A PIN from a file (first line), an environment variable, or a hidden prompt."""
    if file is not None:
        try:
            lines = file.read_text(encoding="ascii").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {file}: {exc}", 2)
        if not lines or not lines[0]:
            _fail(f"{file} is empty: put the PIN on its first line", 2)
        return lines[0]
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        _fail(f"no PIN given: use a terminal, a PIN file option or ${env}", 2)
    pin: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return pin


def _trust(opts: _Options) -> TrustConfig:
    """What to trust (library resolution: options, environment, the software token's maker)."""
    from ebank_auth.usbkey.connect import resolve_trust

    if opts.skip_attestation:
        click.echo(
            "warning: token authenticity NOT checked (--insecure-skip-attestation)", err=True
        )
    state: Path | None = None
    if opts.emulator and not opts.skip_attestation:
        from ebank_auth.paths import token_state_dir

        state = opts.emulator_state or token_state_dir()
        if not opts.trust_roots and not os.environ.get("EBANK_AUTH_TOKEN_ROOTS"):
            click.echo(
                f"note: trusting the software token's TEST manufacturer in {state} (--emulator): "
                "this proves nothing about a real token",
                err=True,
            )
    try:
        return resolve_trust(
            opts.trust_roots,
            opts.allowlist,
            software_token_state=state,
            require_genuine=not opts.skip_attestation,
        )
    except (ConfigurationError, EncodingError) as exc:
        _fail(exc.message, 2)


def _where(opts: _Options) -> tuple[str | None, TransportName]:
    return (opts.hid, "hid") if opts.hid is not None else (opts.reader, "pcsc")


@contextmanager
def _session(ctx: click.Context) -> Iterator[Token]:
    """Open the token (service, reader, card, then trust, attestation, secure channel);
    errors become messages."""
    from ebank_auth.usbkey.backends import BackendOptions, open_backend

    opts: _Options = ctx.obj
    if opts.backend != "native" and opts.hid is not None:
        _fail(f"--hid is for the native backend; the {opts.backend} backend does not use it", 2)
    where = BackendOptions(
        reader=opts.reader,
        hid=opts.hid,
        pkcs11_module=opts.pkcs11_module,
        pkcs11_token=opts.pkcs11_token,
        skf_library=opts.skf_library,
        skf_device=opts.skf_device,
        skf_application=opts.skf_application,
    )
    try:
        # open_token checks service, reader and card before trust: the likelier causes first
        session = open_backend(opts.backend, where, trust=lambda: _trust(opts))
    except ConfigurationError as exc:
        _fail(exc.message, 2)
    with session:
        yield session


def _device_options(func: F) -> F:
    """``--reader`` / ``--hid`` on the subcommand too (``token conformance --reader X``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, reader: str | None, hid_path: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        opts: _Options = ctx.obj
        if reader is not None and hid_path is not None:
            _fail("choose either --reader or --hid", 2)
        if reader is not None:
            opts.reader, opts.hid = reader, None
        if hid_path is not None:
            opts.hid, opts.reader = hid_path, None
        return func(*args, **kwargs)

    wrapper = click.option(
        "--hid", "hid_path", default=None, metavar="PATH", help="Use this HID device."
    )(wrapper)
    wrapper = click.option(
        "--reader", default=None, help="PC/SC reader (name, index or unique part)."
    )(wrapper)
    return wrapper  # type: ignore[return-value]


def _pin_options(func: F) -> F:
    func = click.option(
        "--pin-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Read the user PIN from this file's first line (else $EBANK_AUTH_PIN or a prompt).",
    )(func)
    return func


def _verify_user(session: Token, pin_file: Path | None) -> None:
    pin = _read_secret(pin_file, "EBANK_AUTH_PIN", "User PIN")
    session.verify_pin(pin)


@click.group("token", cls=Group)
@click.option("--reader", default=None, help="PC/SC reader (name, index or unique part).")
@click.option("--hid", "hid_path", default=None, metavar="PATH", help="Use this HID device.")
@click.option(
    "--trust-root",
    "trust_roots",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Manufacturer root certificate(s) (PEM/DER) the device certificate must chain to.",
)
@click.option(
    "--firmware-allowlist",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Manufacturer-signed firmware allow-list (JSON).",
)
@click.option(
    "--emulator",
    is_flag=True,
    help="Trust the software token's TEST manufacturer (no --trust-root needed); never for "
    "real tokens.",
)
@click.option(
    "--emulator-state",
    type=click.Path(path_type=Path, file_okay=False),
    help="Software token state dir for --emulator (implies it; default $EBANK_AUTH_TOKEN_STATE).",
)
@click.option(
    "--insecure-skip-attestation",
    is_flag=True,
    hidden=True,
    help="Development only: do not check that the token is genuine.",
)
@click.option(
    "--backend",
    type=click.Choice(["native", "piv", "pkcs11", "skf"]),
    default="native",
    show_default=True,
    help="How to reach the token: our APDU protocol, the PIV card edge, a vendor PKCS#11 "
    "module or a vendor SKF (GM/T 0016) library.",
)
@click.option(
    "--pkcs11-module",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The vendor's PKCS#11 module (--backend pkcs11).",
)
@click.option("--pkcs11-token", default=None, help="Slot id or token label (--backend pkcs11).")
@click.option(
    "--skf-library",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The vendor's SKF library (--backend skf).",
)
@click.option("--skf-device", default=None, help="SKF device name (--backend skf).")
@click.option("--skf-application", default=None, help="SKF application (--backend skf).")
@click.pass_context
def token(
    ctx: click.Context,
    reader: str | None,
    hid_path: str | None,
    trust_roots: tuple[Path, ...],
    firmware_allowlist: Path | None,
    emulator: bool,
    emulator_state: Path | None,
    insecure_skip_attestation: bool,
    backend: str,
    pkcs11_module: Path | None,
    pkcs11_token: str | None,
    skf_library: Path | None,
    skf_device: str | None,
    skf_application: str | None,
) -> None:
    """Drive a USB Key / V盾 token (PC/SC or HID) or the software token; with --backend, a PIV
    card or a token behind a vendor's PKCS#11 module or SKF library."""
    if reader is not None and hid_path is not None:
        _fail("choose either --reader or --hid", 2)
    if backend == "pkcs11" and pkcs11_module is None:
        _fail("--backend pkcs11 needs --pkcs11-module PATH (the vendor's module)", 2)
    if backend == "skf" and skf_library is None:
        _fail("--backend skf needs --skf-library PATH (the vendor's SKF library)", 2)
    ctx.obj = _Options(
        reader,
        hid_path,
        trust_roots,
        firmware_allowlist,
        emulator_state,
        insecure_skip_attestation,
        emulator or emulator_state is not None,
        backend,
        pkcs11_module,
        pkcs11_token,
        skf_library,
        skf_device,
        skf_application,
    )


def _attach_list() -> None:
    try:
        from ebank_auth.cli.token_list import token_list
    except ImportError:  # pragma: no cover - transport layer missing
        return
    token.add_command(token_list, "list")


_attach_list()


# ---------------------------------------------------------------------------- info
@token.command(
    "info",
    epilog=examples(
        "ebank-auth token info   # with $EBANK_AUTH_TOKEN_ROOTS set",
        'ebank-auth token --emulator info --reader "Virtual PCD 00 00" --json',
        "ebank-auth token --trust-root maker-root.pem --firmware-allowlist fw.json info",
        "ebank-auth token --backend piv info",
        "ebank-auth token --backend pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so info",
        "ebank-auth token --backend skf --skf-library ./libvendor_skf.so info --json",
    ),
)
@_device_options
@json_option
@click.pass_context
def info_cmd(ctx: click.Context, as_json: bool) -> None:
    """Serial, firmware, authenticity, PIN counters, key containers, and whether the token can
    show a transaction and sign what it showed (confirm-and-sign)."""
    from ebank_auth.errors import NotSupportedByToken
    from ebank_auth.usbkey.token import PinStatus

    opts: _Options = ctx.obj
    with _session(ctx) as s:
        info = s.device_info()
        att = s.attestation
        user = s.pin_status(PinRef.USER)
        try:
            admin: PinStatus | None = s.pin_status(PinRef.ADMIN)
        except NotSupportedByToken:
            admin = None  # e.g. PKCS#11 reports no SO PIN counter
        containers = s.list_containers()
        can_confirm = s.can_confirm
    doc: dict[str, Any] = {
        "backend": opts.backend,
        "confirm_and_sign": can_confirm,
        "serial": info.serial,
        "label": info.label,
        "manufacturer": info.manufacturer,
        "firmware_version": info.firmware_version,
        "firmware_sm3": info.firmware_hash.hex(),
        "capabilities": [c.name for c in type(info.capabilities) if c in info.capabilities],
        "genuine": att.genuine if att else False,
        "attestation": att.message if att else "",
        "device_certificate": att.device_certificate_subject if att else "",
        "user_pin": {"max_retries": user.max_retries, "remaining": user.remaining},
        "admin_pin": None
        if admin is None
        else {"max_retries": admin.max_retries, "remaining": admin.remaining},
        "containers": [
            {
                "name": c.name,
                "algorithm": c.algorithm.name,
                "usage": c.usage.name.lower(),
                "certificate": c.has_certificate,
            }
            for c in containers
        ],
    }
    lines = [
        f"serial:        {doc['serial']}",
        f"label:         {doc['label']}",
        f"manufacturer:  {doc['manufacturer']}",
        f"firmware:      {doc['firmware_version']} (SM3 {doc['firmware_sm3'][:16]}…)",
        f"genuine:       {'yes' if doc['genuine'] else 'NO'} — {doc['attestation']}",
        f"capabilities:  {', '.join(doc['capabilities'])}",
        f"user PIN:      {user.remaining}/{user.max_retries} tries left",
        "admin PIN:     "
        + (
            "not reported" if admin is None else f"{admin.remaining}/{admin.max_retries} tries left"
        ),
        f"backend:       {opts.backend}",
        "confirm+sign:  "
        + (
            "yes (shows the transaction, signs what it showed)"
            if can_confirm
            else "NO: no display, so its signatures never count as a transaction confirmation"
        ),
    ]
    for c in doc["containers"]:
        cert = "with certificate" if c["certificate"] else "no certificate"
        lines.append(f"container:     {c['name']}  {c['algorithm']}  {c['usage']}  {cert}")
    emit(doc, lines)


# ---------------------------------------------------------------------------- PIN
@token.group("pin")
def pin_group() -> None:
    """Verify, change and unblock PINs; show retry counters."""


@pin_group.command(
    "verify",
    epilog=examples(
        "ebank-auth token pin verify",
        "EBANK_AUTH_PIN=… ebank-auth token pin verify --json",
        "ebank-auth token pin verify --admin --pin-file admin-pin.txt",
    ),
)
@_device_options
@_pin_options
@click.option("--admin", is_flag=True, help="Verify the admin (SO) PIN instead.")
@json_option
@click.pass_context
def pin_verify(ctx: click.Context, pin_file: Path | None, admin: bool, as_json: bool) -> None:
    """Check a PIN (spends a try when wrong)."""
    with _session(ctx) as s:
        if admin:
            pin = _read_secret(pin_file, "EBANK_AUTH_ADMIN_PIN", "Admin PIN")
            s.verify_pin(pin, PinRef.ADMIN)
        else:
            _verify_user(s, pin_file)
        status = s.pin_status(PinRef.ADMIN if admin else PinRef.USER)
    emit(
        {"pin": "admin" if admin else "user", "correct": True, "remaining": status.remaining,
         "max_retries": status.max_retries},
        f"PIN correct ({status.remaining}/{status.max_retries} tries available)",
    )  # fmt: skip


@pin_group.command(
    "change",
    epilog=examples(
        "ebank-auth token pin change",
        "ebank-auth token pin change --pin-file old.txt --new-pin-file new.txt --json",
        "ebank-auth token pin change --admin",
    ),
)
@_device_options
@_pin_options
@click.option(
    "--new-pin-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read the new PIN from this file's first line (else $EBANK_AUTH_NEW_PIN or a prompt).",
)
@click.option("--admin", is_flag=True, help="Change the admin (SO) PIN instead.")
@json_option
@click.pass_context
def pin_change(
    ctx: click.Context,
    pin_file: Path | None,
    new_pin_file: Path | None,
    admin: bool,
    as_json: bool,
) -> None:
    """Change a PIN (new PIN: 6-16 characters, not trivial)."""
    env = "EBANK_AUTH_ADMIN_PIN" if admin else "EBANK_AUTH_PIN"
    old = _read_secret(pin_file, env, "Current admin PIN" if admin else "Current PIN")
    new = _read_secret(new_pin_file, "EBANK_AUTH_NEW_PIN", "New PIN", confirm=True)
    from ebank_auth.usbkey.protocol import check_pin_complexity

    check_pin_complexity(new)  # PinPolicyError is an input error (2) before touching the token
    with _session(ctx) as s:
        s.change_pin(old, new, PinRef.ADMIN if admin else PinRef.USER)
    emit({"pin": "admin" if admin else "user", "changed": True}, "PIN changed")


_admin_pin_file = click.option(
    "--admin-pin-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read the admin (SO) PIN from this file's first line (else $EBANK_AUTH_ADMIN_PIN or a "
    "prompt).  A locked admin PIN is final: the token must be replaced.",
)


@pin_group.command(
    "unblock",
    epilog=examples(
        "ebank-auth token pin unblock",
        "ebank-auth token pin unblock --admin-pin-file so.txt --new-pin-file new.txt --json",
    ),
)
@_device_options
@_admin_pin_file
@click.option(
    "--new-pin-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read the new user PIN from this file's first line (else $EBANK_AUTH_NEW_PIN or a prompt).",
)
@json_option
@click.pass_context
def pin_unblock(
    ctx: click.Context, admin_pin_file: Path | None, new_pin_file: Path | None, as_json: bool
) -> None:
    """Unblock the user PIN with the admin (SO) PIN and set a new user PIN."""
    admin = _read_secret(admin_pin_file, "EBANK_AUTH_ADMIN_PIN", "Admin PIN")
    new = _read_secret(new_pin_file, "EBANK_AUTH_NEW_PIN", "New user PIN", confirm=True)
    with _session(ctx) as s:
        s.unblock_pin(admin, new)
    emit({"unblocked": True}, "user PIN unblocked and set; retry counter reset")


@pin_group.command(
    "status",
    epilog=examples("ebank-auth token pin status", "ebank-auth token pin status --json"),
)
@_device_options
@json_option
@click.pass_context
def pin_status(ctx: click.Context, as_json: bool) -> None:
    """Retry counters of the user and admin PIN."""
    with _session(ctx) as s:
        user = s.pin_status(PinRef.USER)
        admin = s.pin_status(PinRef.ADMIN)
    doc = {
        p.ref.name.lower(): {
            "max_retries": p.max_retries,
            "remaining": p.remaining,
            "locked": p.locked,
        }
        for p in (user, admin)
    }
    lines = []
    for p in (user, admin):
        state = "LOCKED" if p.locked else "ok"
        if p.locked and p.ref is PinRef.ADMIN:
            state = "LOCKED (final: the token must be replaced)"
        lines.append(f"{p.ref.name.lower():5}  {p.remaining}/{p.max_retries} tries left  {state}")
    emit(doc, lines)


@pin_group.command(
    "retries",
    epilog=examples(
        "ebank-auth token pin retries 5",
        "ebank-auth token pin retries 3 --for-admin --admin-pin-file so.txt --json",
    ),
)
@_device_options
@click.argument("limit", type=click.IntRange(1, 10))
@_admin_pin_file
@click.option("--for-admin", is_flag=True, help="Set the admin PIN's limit instead.")
@json_option
@click.pass_context
def pin_retries(
    ctx: click.Context, limit: int, admin_pin_file: Path | None, for_admin: bool, as_json: bool
) -> None:
    """Set a PIN's retry limit (1-10, UK-3); needs the admin PIN."""
    admin = _read_secret(admin_pin_file, "EBANK_AUTH_ADMIN_PIN", "Admin PIN")
    with _session(ctx) as s:
        s.verify_pin(admin, PinRef.ADMIN)
        s.set_retry_limit(limit, PinRef.ADMIN if for_admin else PinRef.USER)
    emit(
        {"pin": "admin" if for_admin else "user", "retry_limit": limit},
        f"retry limit set to {limit}",
    )


# ---------------------------------------------------------------------------- keys
@token.group("key")
def key_group() -> None:
    """Generate key pairs on the token and export public keys."""


_ALGS = {"sm2": Algorithm.SM2, "rsa2048": Algorithm.RSA2048}
_USAGES = {"transaction": ContainerUsage.TRANSACTION, "login": ContainerUsage.LOGIN}


def _pem(der: bytes, label: str) -> str:
    b64 = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


@key_group.command(
    "generate",
    epilog=examples(
        "ebank-auth token key generate --public-key-out sign-pub.pem",
        "ebank-auth token key generate --usage login --algorithm rsa2048 --json",
        "ebank-auth token key generate --force --admin-pin-file so.txt   # replace the key",
    ),
)
@_device_options
@click.option(
    "--algorithm", "alg", type=click.Choice(sorted(_ALGS)), default="sm2", show_default=True
)
@click.option("--container", default=None, help="Container name (default: sign / login).")
@click.option(
    "--usage",
    type=click.Choice(sorted(_USAGES)),
    default="transaction",
    show_default=True,
    help="transaction: confirm-and-sign only; login: signs login-challenge digests.",
)
@click.option(
    "--public-key-out",
    "pub_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the public key (SPKI PEM) here (default: print it).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a key the container already holds, without asking (needs the admin PIN; "
    "the old key and its certificate are destroyed).",
)
@_pin_options
@_admin_pin_file
@json_option
@click.pass_context
def key_generate(
    ctx: click.Context,
    alg: str,
    container: str | None,
    usage: str,
    pub_out: Path | None,
    force: bool,
    pin_file: Path | None,
    admin_pin_file: Path | None,
    as_json: bool,
) -> None:
    """Generate a key pair on the token; the private key never leaves it (UK-1).

    A container that already holds a key is not replaced unless you confirm (or pass
    --force) and give the admin (SO) PIN."""
    name = container or (DEFAULT_LOGIN_CONTAINER if usage == "login" else DEFAULT_CONTAINER)
    with _session(ctx) as s:
        _verify_user(s, pin_file)
        replace = False
        if any(c.name == name for c in s.list_containers()):
            if not force:
                if not sys.stdin.isatty() or json_requested():
                    raise KeyAlreadyExists(
                        f"container {name!r} already holds a key: it is not replaced; choose "
                        "another --container, or pass --force (with the admin PIN) to destroy "
                        "the old key and its certificate"
                    )
                click.confirm(
                    f"Container {name!r} already holds a key. Replacing it destroys that key and "
                    "its certificate for good. Replace it?",
                    abort=True,
                    err=True,
                )
            s.verify_pin(
                _read_secret(admin_pin_file, "EBANK_AUTH_ADMIN_PIN", "Admin (SO) PIN"),
                PinRef.ADMIN,
            )
            replace = True
        info = s.generate_key(name, _ALGS[alg], _USAGES[usage], replace=replace)
    pem = _pem(info.public_key_der, "PUBLIC KEY")
    doc = {"container": name, "algorithm": alg, "usage": usage, "public_key_pem": pem,
           "public_key_out": str(pub_out) if pub_out else None, "replaced": replace}  # fmt: skip
    if pub_out is not None:
        pub_out.write_text(pem, encoding="ascii")
        emit(doc, f"{alg} key generated in container {name!r}; public key written to {pub_out}")
    else:
        emit(doc, f"{alg} key generated in container {name!r}:\n{pem.rstrip()}")


@key_group.command(
    "export",
    epilog=examples(
        "ebank-auth token key export --out sign-pub.pem",
        "ebank-auth token key export --container login --json",
    ),
)
@_device_options
@click.option("--container", default=DEFAULT_CONTAINER, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), help="Output file (default stdout)."
)
@json_option
@click.pass_context
def key_export(ctx: click.Context, container: str, out: Path | None, as_json: bool) -> None:
    """Export a container's public key (SPKI PEM).  Private keys cannot be exported."""
    with _session(ctx) as s:
        info = s.public_key(container)
    pem = _pem(info.public_key_der, "PUBLIC KEY")
    if out is not None:
        out.write_text(pem, encoding="ascii")
    if as_json:
        emit({"container": container, "public_key_pem": pem, "out": str(out) if out else None})
    elif out is None:
        click.echo(pem, nl=False)


@key_group.command(
    "attest",
    epilog=examples(
        "ebank-auth token key attest --out sign-attestation.pem",
        "ebank-auth token key attest --container login --out login-attestation.pem --json",
    ),
)
@_device_options
@click.option("--container", default=DEFAULT_CONTAINER, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the key attestation (PEM: attestation certificate, then the token's "
    "attestation CA) here (default: print it).",
)
@json_option
@click.pass_context
def key_attest(ctx: click.Context, container: str, out: Path | None, as_json: bool) -> None:
    """The token's attestation of a key: what kind of key it is, signed by the token.

    Hand the file to the bank; it checks it with 'ebank-auth token verify-attestation'
    (or CredentialRegistry.enrol_token_key).  No PIN needed."""
    with _session(ctx) as s:
        attestation = s.attest_key(container)
    pem = attestation.to_pem().decode("ascii")
    if out is not None:
        out.write_text(pem, encoding="ascii")
    doc = {"container": container, "attestation_pem": pem, "out": str(out) if out else None}
    if as_json:
        emit(doc)
    elif out is None:
        click.echo(pem, nl=False)
    else:
        emit(doc, f"key attestation of container {container!r} written to {out}")


@token.command(
    "verify-attestation",
    epilog=examples(
        "ebank-auth token verify-attestation sign-attestation.pem --trust-root maker-root.pem",
        "ebank-auth token verify-attestation sign-attestation.pem --trust-root root.pem --json",
    ),
)
@click.argument("attestation_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--trust-root",
    "trust_roots",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Manufacturer root certificate(s) the attestation must chain to (default: as for "
    "every token command).",
)
@json_option
@click.pass_context
def verify_attestation_cmd(
    ctx: click.Context, attestation_file: Path, trust_roots: tuple[Path, ...], as_json: bool
) -> None:
    """Check a key attestation (from 'token key attest') up to the manufacturer root and print
    what it states.  Exit 0 only when the chain verifies; 1 when it does not.  No token needed.

    A bank accepts a key for transaction confirmations only when it says
    "transaction key: yes" (transaction usage, display+button confirmation enforced,
    generated on the token, not exportable)."""
    from ebank_auth.usbkey.key_attestation import verify_key_attestation

    opts: _Options = ctx.obj
    if trust_roots:
        opts.trust_roots = trust_roots
    data = attestation_file.read_bytes()
    facts = verify_key_attestation(data, _trust(opts))
    doc = facts.to_json()
    lines = [
        f"key attestation: VERIFIED up to {facts.root_subject}",
        f"token serial:    {facts.token_serial}",
        f"container:       {facts.container}",
        f"algorithm:       {facts.algorithm.name}",
        f"usage:           {doc['usage']}",
        f"confirmation:    {doc['confirmation']} (enforced by the token)",
        f"origin:          {doc['origin']}",
        f"exportable:      {'yes' if facts.exportable else 'no'}",
        f"firmware:        {facts.firmware_version} (SM3 {facts.firmware_hash[:16]}…)",
        "transaction key: "
        + ("yes" if facts.is_transaction_key else "NO — must not confirm transactions"),
    ]
    emit(doc, lines)


# ---------------------------------------------------------------------------- certificates
@token.group("cert")
def cert_group() -> None:
    """Import and export the certificate of a key container."""


@cert_group.command(
    "import",
    epilog=examples(
        "ebank-auth token cert import alice.pem",
        "ebank-auth token cert import alice-login.pem --container login --json",
    ),
)
@_device_options
@click.argument("cert_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--container", default=DEFAULT_CONTAINER, show_default=True)
@_pin_options
@json_option
@click.pass_context
def cert_import(
    ctx: click.Context, cert_file: Path, container: str, pin_file: Path | None, as_json: bool
) -> None:
    """Store CERT_FILE (PEM/DER) in the container; it must match the container's key."""
    data = cert_file.read_bytes()
    with _session(ctx) as s:
        _verify_user(s, pin_file)
        s.import_certificate(data, container)
    emit({"container": container, "stored": True}, f"certificate stored in container {container!r}")


@cert_group.command(
    "export",
    epilog=examples(
        "ebank-auth token cert export --out alice.pem",
        "ebank-auth token cert export --der --out alice.cer",
        "ebank-auth token cert export --json",
    ),
)
@_device_options
@click.option("--container", default=DEFAULT_CONTAINER, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), help="Output file (default stdout)."
)
@click.option("--der", is_flag=True, help="DER instead of PEM (needs --out).")
@json_option
@click.pass_context
def cert_export(
    ctx: click.Context, container: str, out: Path | None, der: bool, as_json: bool
) -> None:
    """Write the container's certificate (PEM, or DER with --der)."""
    with _session(ctx) as s:
        data = s.export_certificate(container)
    pem = _pem(data, "CERTIFICATE")
    if der:
        if out is None:
            _fail("--der needs --out FILE", 2)
        out.write_bytes(data)
    elif out is not None:
        out.write_text(pem, encoding="ascii")
    if as_json:
        emit({"container": container, "certificate_pem": pem, "out": str(out) if out else None})
    elif out is None:
        click.echo(pem, nl=False)


# ---------------------------------------------------------------------------- signing
@token.command(
    "sign",
    epilog=examples(
        "ebank-auth token sign --tx tx.json --signature-out tx.sig",
        "ebank-auth token sign --tx tx.json --lang en --json",
        "ebank-auth token sign --digest $(ebank-auth crypto sm3 challenge.bin | cut -c1-64)",
    ),
)
@_device_options
@click.option(
    "--tx",
    "tx_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Transaction JSON: confirm-and-sign on the token's display.",
)
@click.option("--digest", "digest_hex", help="32-byte SM3 digest (hex) of a login challenge.")
@click.option("--container", default=None, help="Container (default: sign / login).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option(
    "--signature-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the signature (DER) here.",
)
@click.option(
    "--signed-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the exact bytes the token signed here (for crypto sm2 verify --in).",
)
@_pin_options
@json_option
@click.pass_context
def sign_cmd(
    ctx: click.Context,
    tx_file: Path | None,
    digest_hex: str | None,
    container: str | None,
    lang: str,
    signature_out: Path | None,
    signed_out: Path | None,
    pin_file: Path | None,
    as_json: bool,
) -> None:
    """Confirm-and-sign a transaction (--tx), or sign a login digest (--digest)."""
    if (tx_file is None) == (digest_hex is None):
        _fail("give exactly one of --tx FILE.json or --digest HEX", 2)
    if tx_file is not None:
        from ebank_auth.transaction import Transaction

        try:
            tx = Transaction.from_dict(json.loads(tx_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            _fail(f"cannot read transaction {tx_file}: {exc}", 2)
        name = container or DEFAULT_CONTAINER
        with _session(ctx) as s:
            _verify_user(s, pin_file)
            info("check the transaction on the token's display and press its button…")
            result = s.confirm_and_sign(tx, name, lang)
            pub = s.public_key(name)
        if signature_out is not None:
            signature_out.write_bytes(result.signature)
        if signed_out is not None:
            signed_out.write_bytes(result.signed_bytes)
        doc = {
            "tx_id": tx.tx_id,
            "serial": result.serial,
            "container": result.container,
            "algorithm": result.algorithm.name,
            "signature": base64.b64encode(result.signature).decode("ascii"),
            "signed_bytes": base64.b64encode(result.signed_bytes).decode("ascii"),
            "displayed": result.display_text,
            "public_key_pem": _pem(pub.public_key_der, "PUBLIC KEY"),
        }
        lines = [
            f"signed transaction {tx.tx_id} on token {result.serial} "
            f"(container {result.container!r}, {result.algorithm.name})",
            f"displayed: {result.display_text}",
            f"signature: {result.signature.hex()}",
        ]
        if signature_out is not None:
            lines.append(f"signature written to {signature_out}")
        if signed_out is not None:
            lines.append(f"signed bytes written to {signed_out}")
        emit(doc, lines)
        return
    assert digest_hex is not None
    try:
        digest = bytes.fromhex(digest_hex)
    except ValueError:
        _fail("--digest must be hexadecimal", 2)
    if len(digest) != 32:
        _fail("--digest must be 32 bytes (64 hex digits): e = SM3(Z ‖ M)", 2)
    name = container or DEFAULT_LOGIN_CONTAINER
    with _session(ctx) as s:
        _verify_user(s, pin_file)
        signature = s.sign_digest(digest, name)
    if signature_out is not None:
        signature_out.write_bytes(signature)
    emit({"container": name, "signature": signature.hex()}, signature.hex())


# ---------------------------------------------------------------------------- conformance
@token.command(
    "conformance",
    epilog=examples(
        "ebank-auth token conformance",
        "ebank-auth token conformance --pin-file pin.txt --admin-pin-file so.txt --yes --json",
    ),
)
@_device_options
@json_option
@_pin_options
@_admin_pin_file
@click.option("--yes", is_flag=True, help="Do not ask before modifying the token.")
@click.pass_context
def conformance_cmd(
    ctx: click.Context,
    as_json: bool,
    pin_file: Path | None,
    admin_pin_file: Path | None,
    yes: bool,
) -> None:
    """Run the standard checks (UK-1…UK-9) against the token and explain each.

    The run spends every user-PIN try (then unblocks with the admin PIN) and
    creates 'conformance' key containers: use a test token."""
    from ebank_auth.usbkey.conformance import run_conformance

    opts: _Options = ctx.obj
    if not yes and sys.stdin.isatty():
        click.confirm(
            "This locks and unblocks the user PIN and creates keys. Continue?", abort=True
        )
    user = _read_secret(pin_file, "EBANK_AUTH_PIN", "User PIN")
    admin = _read_secret(admin_pin_file, "EBANK_AUTH_ADMIN_PIN", "Admin PIN")

    def prompt(message: str) -> None:
        info(f">> {message}")

    from ebank_auth.usbkey.attestation import TrustConfig
    from ebank_auth.usbkey.connect import open_token

    reader, transport = _where(opts)
    not_genuine: TokenNotGenuine | None = None
    trust: TrustConfig | None = None

    def resolved() -> TrustConfig:
        nonlocal trust
        trust = _trust(opts)
        return trust

    token: Token
    if opts.backend != "native":
        with _session(ctx) as other:
            report = run_conformance(other, user, admin, prompt=prompt)
        _conformance_report(report, as_json)
    try:  # service, reader and card first, then trust and authenticity
        token = open_token(reader, transport=transport, trust=resolved)
    except TokenNotGenuine as exc:
        # report it as the failed 'genuine' check and still run the others on this test token
        not_genuine = exc
        info(f">> the token is NOT genuine ({exc.message}); running the other checks anyway")
        token = open_token(reader, transport=transport, trust=TrustConfig(require_genuine=False))
    with token:
        report = run_conformance(
            token, user, admin, prompt=prompt, not_genuine=not_genuine, trust=trust
        )
    _conformance_report(report, as_json)


def _conformance_report(report: ConformanceReport, as_json: bool) -> NoReturn:
    if as_json:
        failed = TokenError("conformance FAILED: see the checks marked fail")
        verdict(report.passed, report.to_json(), None, error=None if report.passed else failed)
    else:
        click.echo(f"token {report.serial} (firmware {report.firmware_version}) at {report.reader}")
        for c in report.checks:
            mark = "N/A" if c.status.value == "unavailable" else c.status.value.upper()
            click.echo(f"[{mark:4}] {c.title}  ({', '.join(c.requirements)})")
            click.echo(f"       what: {c.explanation}")
            click.echo(f"       result: {c.detail}")
        if report.unavailable:
            click.echo(
                "not available on this token/backend: "
                + ", ".join(c.id for c in report.unavailable)
                + (
                    ""
                    if report.can_confirm
                    else " — it cannot show a transaction: a policy must not count its "
                    "signatures as transaction confirmations (WYSIWYS, UK-6/UK-7)"
                )
            )
        click.echo("conformance: PASSED" if report.passed else "conformance: FAILED")
    sys.exit(0 if report.passed else 1)


# ---------------------------------------------------------------------------- CSR
@token.command(
    "csr",
    epilog=examples(
        'ebank-auth token csr --subject "CN=Zhang San,O=Bank" --out zs.csr',
        "ebank-auth token --backend piv csr --container 9a --subject CN=alice --out a.csr",
        "ebank-auth token --backend skf --skf-library ./libskf.so csr --container login "
        "--subject CN=bob --out b.csr --json",
    ),
)
@_device_options
@click.option("--container", default=DEFAULT_LOGIN_CONTAINER, show_default=True,
              help="The key's container (PIV: slot 9a/9c/9d/9e).")  # fmt: skip
@click.option("--subject", required=True, help='Subject DN, e.g. "CN=Zhang San,O=Bank,C=CN".')
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="CSR (PEM)."
)
@_pin_options
@json_option
@click.pass_context
def csr_cmd(
    ctx: click.Context,
    container: str,
    subject: str,
    out: Path,
    pin_file: Path | None,
    as_json: bool,
) -> None:
    """A PKCS#10 request signed by a key on the token (any backend), for the bank's CA."""
    from ebank_auth.crypto import x509
    from ebank_auth.usbkey.backends import signing_key_for

    with _session(ctx) as s:
        _verify_user(s, pin_file)
        request = x509.build_csr(subject, signing_key_for(s, container))
    out.write_bytes(request.to_pem())
    emit(
        {"csr": str(out), "subject": subject, "container": container},
        [f"CSR for {subject} signed on the token (container {container}) written to {out}"],
    )
