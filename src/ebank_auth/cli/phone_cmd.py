"""``ebank-auth phone``: the software phone shield (enrol, confirm, status, revoke, its page).

    ebank-auth phone enrol LINK [--state DIR] [--authorisation-code CODE] [--pin-file F]
    ebank-auth phone sign [--state DIR] [--approve | --reject] [--pin-file F] [--wait S]
    ebank-auth phone status [--state DIR]          exit 0 active, 1 locked or revoked
    ebank-auth phone revoke [--state DIR] --yes
    ebank-auth phone attestation-root [--state DIR]  the PEM root a test bank must trust
    ebank-auth phone page [--state DIR] [--port N]  the phone's screen as a loopback web page

The phone talks to the bank named in the enrolment link over the HTTP JSON contract of
``docs/phone-shield.md``.  The state directory defaults to ``<home>/phone``
(``EBANK_AUTH_PHONE_STATE``).  The PIN comes from ``--pin-file``, ``$EBANK_AUTH_PHONE_PIN`` or a
hidden prompt — never from an option value.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ebank_auth.errors import DeviceLocked, DeviceRevoked

from ._output import Group, emit, examples, info, json_option, verdict

PIN_ENV = "EBANK_AUTH_PHONE_PIN"
STATE_ENV = "EBANK_AUTH_PHONE_STATE"

_state_option = click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"The phone's state directory (default ${STATE_ENV}, else <home>/phone).",
)
_pin_option = click.option(
    "--pin-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"Read the phone-shield PIN from this file's first line (else ${PIN_ENV} or a prompt).",
)


def _state(state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env)
    from ebank_auth.paths import home

    return home() / "phone"


def _pin(pin_file: Path | None, confirm: bool = False) -> str:
    if pin_file is not None:
        try:
            lines = pin_file.read_text(encoding="ascii").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.UsageError(f"cannot read {pin_file}: {exc}") from None
        if not lines or not lines[0]:
            raise click.UsageError(f"{pin_file} is empty: put the PIN on its first line")
        return lines[0]
    value = os.environ.get(PIN_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise click.UsageError(f"no PIN given: use a terminal, --pin-file or ${PIN_ENV}")
    pin: str = click.prompt("Phone-shield PIN", hide_input=True, confirmation_prompt=confirm)
    return pin


def _phone(state_dir: Path | None):  # type: ignore[no-untyped-def]
    from ebank_auth.phone_shield.emulator import SoftwarePhone

    return SoftwarePhone(_state(state_dir))


@click.group(cls=Group)
def phone() -> None:
    """The software phone shield: enrol with a bank, confirm transfers."""


@phone.command(
    epilog=examples(
        "ebank-auth phone enrol 'ebank-phone-shield://enrol?server=…&id=…&s=…' "
        "--authorisation-code 12345678",
        "EBANK_AUTH_PHONE_PIN=246810 ebank-auth phone enrol LINK --state ./phone-a --json",
    )
)
@click.argument("link")
@_state_option
@click.option(
    "--authorisation-code", default=None, help="The code the bank sent by SMS (else a prompt)."
)
@_pin_option
@json_option
def enrol(
    link: str,
    state_dir: Path | None,
    authorisation_code: str | None,
    pin_file: Path | None,
    as_json: bool,
) -> None:
    """Enrol this phone with the bank of LINK (the enrolment QR code's content)."""
    device = _phone(state_dir)
    offer = device.open_link(link)
    info(f"reference code: {offer.reference_code} — check that the bank's page shows the same")
    code = authorisation_code or click.prompt("Authorisation code (SMS)")
    pin = _pin(pin_file, confirm=True)
    cert = device.enrol(link, code, pin)
    emit(
        {
            "device_id": device.device_id,
            "reference_code": offer.reference_code,
            "subject": cert.subject,
            "certificate_serial": format(cert.serial_number, "x"),
        },
        [
            f"enrolled: device {device.device_id}",
            f"certificate: {cert.subject} (serial {cert.serial_number:x})",
        ],
    )


@phone.command(
    epilog=examples(
        "ebank-auth phone sign --approve --pin-file pin.txt",
        "ebank-auth phone sign --reject --wait 30 --json",
    )
)
@_state_option
@click.option("--approve/--reject", "approve", default=None, help="Decide without asking.")
@_pin_option
@click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a confirmation to arrive.",
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@json_option
def sign(
    state_dir: Path | None,
    approve: bool | None,
    pin_file: Path | None,
    wait: float,
    lang: str,
    as_json: bool,
) -> None:
    """Show the bank's open confirmation and approve (sign) or reject it."""
    device = _phone(state_dir)
    deadline = time.monotonic() + wait
    pending = device.pending()
    while pending is None and time.monotonic() < deadline:
        time.sleep(0.5)
        pending = device.pending()
    if pending is None:
        emit({"session": None}, "no transaction to confirm")
        return
    text = pending.transaction.display_text(lang)
    if not as_json:
        click.echo(text)
    decision = approve
    if decision is None:
        decision = click.confirm("Approve this transaction?", default=False, err=True)
    status = device.reject(pending) if not decision else device.confirm(pending, pin=_pin(pin_file))
    emit(
        {
            "session_id": pending.session_id,
            "status": status,
            "transaction": pending.transaction.to_dict(),
        },
        f"{status}: {pending.transaction.tx_id}",
    )


@phone.command(
    epilog=examples("ebank-auth phone status", "ebank-auth phone status --state ./phone-a --json")
)
@_state_option
@json_option
def status(state_dir: Path | None, as_json: bool) -> None:
    """Show the phone shield's state at the bank (exit 1 when locked or revoked)."""
    doc = _phone(state_dir).status()
    state = doc.get("state")
    text = f"{doc['device_id']}: {state} ({doc['failures']} of {doc['limit']} failed signatures)"
    if state == "active":
        verdict(True, doc, text)
    error = DeviceLocked() if state == "locked" else DeviceRevoked()
    verdict(False, doc, text, error=error)


@phone.command(
    epilog=examples("ebank-auth phone revoke --yes", "ebank-auth phone revoke --yes --json")
)
@_state_option
@click.option("--yes", is_flag=True, help="Confirm: the phone shield cannot be used afterwards.")
@json_option
def revoke(state_dir: Path | None, yes: bool, as_json: bool) -> None:
    """Revoke this phone shield at the bank and forget its share."""
    if not yes:
        raise click.UsageError("revoking cannot be undone: add --yes")
    device = _phone(state_dir)
    device_id = device.device_id
    device.revoke()
    emit({"device_id": device_id, "state": "revoked"}, f"{device_id}: revoked")


@phone.command(
    "attestation-root",
    epilog=examples("ebank-auth phone attestation-root > phone-root.pem"),
)
@_state_option
@json_option
def attestation_root(state_dir: Path | None, as_json: bool) -> None:
    """Print the software phone's TEST attestation root (a test bank trusts it)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ebank_auth.phone_shield.emulator import SoftwareAttestationAuthority

    ca = SoftwareAttestationAuthority.load_or_create(_state(state_dir))
    pem = ca.root.public_bytes(Encoding.PEM).decode("ascii")
    emit({"pem": pem}, pem.rstrip("\n"))


@phone.command(epilog=examples("ebank-auth phone page --port 8766"))
@_state_option
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Loopback port (0: any).")
@json_option
def page(state_dir: Path | None, port: int, as_json: bool) -> None:
    """Serve the phone's screen as a web page on loopback until Ctrl-C."""
    from ebank_auth.phone_shield.emulator.page import PhonePage

    screen = PhonePage(_phone(state_dir), port)
    emit({"url": screen.url}, f"phone page: {screen.url}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        screen.close()
