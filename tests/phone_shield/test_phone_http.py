"""The software phone over real HTTP: the CLI against the bank's API on loopback, and the
phone's own web page driven with a plain HTTP client."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ebank_auth.cli import cli
from ebank_auth.phone_shield import AttestationTrust, SessionStatus, serve
from ebank_auth.phone_shield.emulator import SoftwareAttestationAuthority
from ebank_auth.phone_shield.emulator.page import PhonePage

from .conftest import PIN, Bank, transfer


@pytest.fixture
def http_bank(bank: Bank, tmp_path: Path) -> Iterator[tuple[Bank, Path]]:
    state = tmp_path / "phone"
    phone_root = SoftwareAttestationAuthority.load_or_create(state)
    bank.server.attestation_trust = AttestationTrust.from_roots([phone_root.root_der()])
    with serve(bank.api) as url:
        bank.server.server_url = url
        yield bank, state


def _cli(*args: str, pin: str = PIN) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["phone", *args, "--json"], env={"EBANK_AUTH_PHONE_PIN": pin})
    return result.exit_code, json.loads(result.stdout)


def test_cli_enrol_sign_status_revoke_over_http(http_bank: tuple[Bank, Path]) -> None:
    bank, state = http_bank
    codes = bank.codes_for()
    code, doc = _cli(
        "enrol", codes.link, "--state", str(state), "--authorisation-code", codes.authorisation_code
    )
    assert code == 0 and doc["ok"] and doc["reference_code"] == codes.reference_code
    device_id = doc["device_id"]
    code, doc = _cli("sign", "--state", str(state))
    assert code == 0 and doc["session"] is None  # nothing to confirm yet
    session = bank.server.begin_signing(device_id, transfer(3))
    code, doc = _cli("sign", "--state", str(state), "--approve")
    assert code == 0 and doc["status"] == "signed" and doc["transaction"]["tx_id"] == "PS3"
    assert bank.server.signing_result(session.session_id).status is SessionStatus.SIGNED
    # a wrong PIN: refused (exit 1) and counted by the bank
    bank.server.begin_signing(device_id, transfer(4))
    code, doc = _cli("sign", "--state", str(state), "--approve", pin="999999")
    assert code == 1 and doc["error"]["type"] == "JointSignatureRefused"
    code, doc = _cli("status", "--state", str(state))
    assert code == 0 and doc["state"] == "active" and doc["failures"] == 1
    code, doc = _cli("revoke", "--state", str(state), "--yes")
    assert code == 0 and doc["state"] == "revoked"
    assert bank.server.status(device_id).state.value == "revoked"
    code, doc = _cli("status", "--state", str(state))
    assert code == 2  # nothing enrolled any more


def test_cli_refusals_keep_their_type_over_http(http_bank: tuple[Bank, Path]) -> None:
    bank, state = http_bank
    codes = bank.codes_for()
    code, doc = _cli("enrol", codes.link, "--state", str(state), "--authorisation-code", "00000000")
    assert code == 1 and doc["error"]["type"] == "EnrolmentRefused"
    code, doc = _cli("revoke", "--state", str(state))
    assert code == 2  # --yes missing


def test_cli_attestation_root_is_the_phones(tmp_path: Path) -> None:
    code, doc = _cli("attestation-root", "--state", str(tmp_path))
    ca = SoftwareAttestationAuthority.load_or_create(tmp_path)
    assert code == 0 and "BEGIN CERTIFICATE" in doc["pem"]
    assert AttestationTrust.from_roots([doc["pem"].encode()]).is_pinned(ca.root)


# ---------------------------------------------------------------------- the phone's page
def _get(url: str) -> tuple[int, str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def _post(page: PhonePage, path: str, form: dict[str, str], origin: str | None = None) -> int:
    from urllib.parse import urlencode

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers["Origin"] = origin or page.origin
    req = urllib.request.Request(
        page.url + path, data=urlencode(form).encode(), headers=headers, method="POST"
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_phone_page_enrols_and_confirms(bank: Bank) -> None:
    phone = bank.phone()
    codes = bank.codes_for()
    with PhonePage(phone) as page:
        status, body, headers = _get(page.url)
        assert status == 200 and 'id="scan"' in body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert re.search(r"<script(?![^>]*\bsrc=)", body) is None  # no inline script
        assert _get(page.origin + "/p/" + "0" * 32 + "/")[0] == 404
        # "scan": open the enrolment link
        from urllib.parse import quote

        status, body, _ = _get(page.url + "open?link=" + quote(codes.link, safe=""))
        assert status == 200 and codes.reference_code in body
        assert _post(page, "enrol", {"code": codes.authorisation_code, "pin": PIN}) == 303
        assert phone.enrolled
        session = bank.server.begin_signing(phone.device_id, transfer(5))
        status, body, _ = _get(page.url)
        assert "张三" in body and 'id="approve"' in body
        form = {"session": session.session_id, "pin": PIN, "choice": "approve"}
        # another site's form cannot press Approve
        assert _post(page, "confirm", form, origin="http://evil.example") == 403
        assert bank.server.signing_result(session.session_id).status is SessionStatus.PENDING
        assert _post(page, "confirm", form) == 303
        assert bank.server.signing_result(session.session_id).status is SessionStatus.SIGNED
        status, body, _ = _get(page.url)
        assert "Confirmation signed." in body and 'id="idle"' in body


def test_phone_page_reject(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    with PhonePage(phone) as page:
        session = bank.server.begin_signing(phone.device_id, transfer(6))
        _get(page.url)
        form = {"session": session.session_id, "pin": "", "choice": "reject"}
        assert _post(page, "confirm", form) == 303
        with pytest.raises(Exception, match="rejected"):
            bank.server.signing_result(session.session_id)
