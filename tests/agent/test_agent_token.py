"""The agent's token operations end to end: bank page → agent (HTTP) → pcscd → software token.

The token is the software token behind a real isolated pcscd (vpcd); its display is a simulated
customer who approves every screen except one saying REJECT (``ReadingUser``), or — for the busy
test — the token's screen web page, pressed over HTTP as a person would.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ebank_auth.agent import AgentConfig, AgentServer, create_agent, login_message
from ebank_auth.confirmation import verify_confirmation
from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import EbankAuthError
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey import (
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    TrustConfig,
    open_token,
    resolve_trust,
    verify_key_attestation,
)
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import NoButton, ReadingUser
from ebank_auth.usbkey.emulator.factory import Manufacturer
from ebank_auth.usbkey.emulator.screen_page import WebScreen
from ebank_auth.usbkey.protocol import DEFAULT_RETRY_LIMIT
from plugins.pcscd import PcscdVpcd

from .conftest import ORIGIN, OTHER_ORIGIN, USER_PIN, Client, CountingCard, make_tx

pytestmark = pytest.mark.pcsc


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.fixture(scope="module")
def enrolled(agent: AgentServer) -> dict[str, Any]:
    c = Client(agent)
    c.pair()
    r = c.call("POST", "/v1/enrol", {"pin": USER_PIN, "serial": None})
    assert r.status == 200, r.doc
    return dict(r.doc)


def _public_key(enrolled: dict[str, Any]) -> sm2.SM2PublicKey:
    key = sm2.load_der_public_key(_b64(enrolled["public_key"]))
    assert isinstance(key, sm2.SM2PublicKey)
    return key


def test_tokens_lists_the_inserted_token(client: Client, card: CountingCard) -> None:
    r = client.call("GET", "/v1/tokens")
    assert r.status == 200
    assert r.doc == {"tokens": [{"reader": "Virtual PCD 00 00", "serial": card.token.serial,
                                 "label": card.token.device_info.label, "genuine": True}]}  # fmt: skip


def test_enrol_returns_an_attested_transaction_key_and_never_replaces_it(
    client: Client, enrolled: dict[str, Any], token_state: Path, card: CountingCard
) -> None:
    assert set(enrolled) == {"serial", "algorithm", "public_key", "attestation"}
    assert enrolled["serial"] == card.token.serial and enrolled["algorithm"] == "sm2"
    trust = resolve_trust(software_token_state=token_state)  # the test manufacturer's root
    attested = verify_key_attestation(enrolled["attestation"].encode(), trust)
    assert attested.is_transaction_key and attested.usage is ContainerUsage.TRANSACTION
    assert attested.token_serial == card.token.serial
    leaf = x509.load_certificates(enrolled["attestation"].encode())[0]
    assert leaf.spki_der == _b64(enrolled["public_key"])
    again = client.call("POST", "/v1/enrol", {"pin": USER_PIN})
    assert again.status == 200 and again.doc["public_key"] == enrolled["public_key"]


def test_sign_approved_on_the_token(client: Client, enrolled: dict[str, Any]) -> None:
    tx = make_tx(tx_id="T-approve")
    r = client.call("POST", "/v1/sign", {"transaction": tx.to_dict(), "pin": USER_PIN,
                                         "lang": "en", "serial": enrolled["serial"]})  # fmt: skip
    assert r.status == 200, r.doc
    assert set(r.doc) == {"serial", "signature", "signed", "binding"}
    assert r.doc["binding"] == "session-42" and r.doc["serial"] == enrolled["serial"]
    assert _b64(r.doc["signed"]) == tx.encode()
    verify_confirmation(_public_key(enrolled), _b64(r.doc["signature"]), tx)  # raises if invalid


def test_sign_rejected_on_the_token(
    client: Client, enrolled: dict[str, Any], card: CountingCard
) -> None:
    tx = make_tx(memo="REJECT this one", tx_id="T-reject")
    r = client.call("POST", "/v1/sign", {"transaction": tx.to_dict(), "pin": USER_PIN})
    assert (r.status, r.doc["error"]) == (409, "rejected"), r.doc
    assert "nothing was signed" in r.doc["message"]
    assert card.token.display.shown[-1] == tx.display_text("zh")


def test_nobody_pressing_is_a_timeout(
    client: Client, enrolled: dict[str, Any], card: CountingCard
) -> None:
    card.token.display, card.token.confirm_timeout = NoButton(), 0.2
    try:
        r = client.call("POST", "/v1/sign", {"transaction": make_tx().to_dict(), "pin": USER_PIN})
    finally:
        card.token.display, card.token.confirm_timeout = ReadingUser(), 20
    assert (r.status, r.doc["error"]) == (408, "timeout")


def test_wrong_pin_reports_the_exact_retries_left(
    client: Client, enrolled: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"transaction": make_tx().to_dict(), "pin": "975310"}
    for left in (DEFAULT_RETRY_LIMIT - 1, DEFAULT_RETRY_LIMIT - 2):
        r = client.call("POST", "/v1/sign", body)
        assert (r.status, r.doc["error"], r.doc["retries_left"]) == (401, "pin_incorrect", left)
    assert client.call("POST", "/v1/enrol", {"pin": USER_PIN}).status == 200  # resets the count
    r = client.call("POST", "/v1/sign", body)
    assert r.doc["retries_left"] == DEFAULT_RETRY_LIMIT - 1
    assert client.call("POST", "/v1/enrol", {"pin": USER_PIN}).status == 200
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "/v1/sign" in logged  # requests are logged...
    assert "975310" not in logged and USER_PIN not in logged  # ...never a PIN
    assert (client.pairing or "x") not in logged  # ...nor a pairing


@pytest.mark.parametrize("field", ["digest", "hash", "data", "signature"])
def test_raw_digest_fields_are_refused(
    client: Client, enrolled: dict[str, Any], card: CountingCard, field: str
) -> None:
    before = card.apdus
    tx = make_tx().to_dict()
    digest = make_tx().digest().hex()
    for body in (
        {"transaction": {**tx, field: digest}, "pin": USER_PIN},
        {"transaction": tx, "pin": USER_PIN, field: digest},
        {field: digest, "pin": USER_PIN},
    ):
        r = client.call("POST", "/v1/sign", body)
        assert (r.status, r.doc["error"]) == (400, "bad_request"), body
    assert card.apdus == before


def test_non_canonical_transactions_are_refused(
    client: Client, enrolled: dict[str, Any], card: CountingCard
) -> None:
    before = card.apdus
    tx = make_tx().to_dict()
    for changed in ({"amount": "1234.5"}, {"amount": 1234.5}, {"version": 2},
                    {"timestamp": "2026-11-22 10:30:00"}, {"memo": "a\u202eb"}):  # fmt: skip
        r = client.call("POST", "/v1/sign", {"transaction": {**tx, **changed}, "pin": USER_PIN})
        assert r.status == 400, changed
    without_memo = {k: v for k, v in tx.items() if k != "memo"}  # valid for from_dict, not exact
    assert (
        client.call("POST", "/v1/sign", {"transaction": without_memo, "pin": USER_PIN}).status
        == 400
    )
    for extra in ({"lang": "fr"}, {"serial": 5}, {"pin": 314159}, {"pin": ""}, {"pin": "x" * 17}):
        r = client.call("POST", "/v1/sign", {"transaction": tx, "pin": USER_PIN, **extra})
        assert (r.status, r.doc["error"]) == (400, "bad_request"), extra
    assert card.apdus == before
    # the control: the counter does see a request that reaches the token
    assert client.call("POST", "/v1/sign", {"transaction": tx, "pin": USER_PIN}).status == 200
    assert card.apdus > before


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_TX = make_tx().to_dict()


def _mutations() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(sorted(_TX))
    text_keys = st.sampled_from(sorted(k for k, v in _TX.items() if isinstance(v, str)))
    return st.one_of(
        _JSON,  # anything at all as the transaction
        st.builds(lambda k, v: {**_TX, k: v}, keys, _JSON),  # one field replaced
        st.builds(lambda k: {n: v for n, v in _TX.items() if n != k}, keys),  # one field missing
        st.builds(
            lambda k, v: {**_TX, k: v},
            st.sampled_from(["digest", "hash", "data", "e", "sm3"]) | st.text(max_size=8),
            _JSON,
        ),
        st.builds(lambda k, s: {**_TX, k: _TX[k] + s}, text_keys, st.text(min_size=1, max_size=3)),
    )


def _canonical(value: Any) -> bool:
    try:
        return isinstance(value, dict) and Transaction.from_dict(value).to_dict() == value
    except (EbankAuthError, TypeError, ValueError):
        return False


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(transaction=_mutations(), top=st.dictionaries(st.sampled_from(["lang", "serial", "x"]), _JSON,
                                                     max_size=1))  # fmt: skip
def test_property_a_body_without_a_canonical_transaction_never_reaches_the_token(
    client: Client, card: CountingCard, transaction: Any, top: dict[str, Any]
) -> None:
    assume(not _canonical(transaction))
    before = card.apdus
    r = client.call("POST", "/v1/sign", {"transaction": transaction, "pin": USER_PIN, **top})
    assert (r.status, r.doc["error"]) == (400, "bad_request")
    assert card.apdus == before  # not even opened: no PIN try spent, nothing shown or signed


def test_certificate_import(
    client: Client, enrolled: dict[str, Any], tmp_path: Path, card: CountingCard
) -> None:
    ca_key = sm2.generate_private_key()
    ca = x509.CertificateAuthority.create_root("CN=Agent Test Bank CA,C=CN", ca_key)
    cert = ca.issue(f"CN={enrolled['serial']}", _public_key(enrolled))
    other = ca.issue("CN=someone else", sm2.generate_private_key().public_key())
    r = client.call(
        "POST", "/v1/certificate", {"pin": USER_PIN, "certificate": cert.to_pem().decode()}
    )
    assert (r.status, r.doc) == (200, {"serial": enrolled["serial"]})
    wrong = client.call("POST", "/v1/certificate",
                        {"pin": USER_PIN, "certificate": other.to_pem().decode()})  # fmt: skip
    assert (wrong.status, wrong.doc["error"]) == (400, "bad_request")
    junk = client.call(
        "POST",
        "/v1/certificate",
        {
            "pin": USER_PIN,
            "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        },
    )
    assert (junk.status, junk.doc["error"]) == (400, "bad_request")
    with open_token(
        "Virtual PCD 00 00", trust=resolve_trust(software_token_state=card.token.state_dir)
    ) as token:
        assert token.export_certificate() == cert.to_der()


def test_authenticate_signs_the_login_message_of_the_requesting_origin(
    agent: AgentServer, client: Client, card: CountingCard, token_state: Path
) -> None:
    challenge = "5a" * 32
    r = client.call("POST", "/v1/authenticate", {"challenge": challenge, "pin": USER_PIN})
    if r.status == 409:  # first run in this module: no login key yet
        assert r.doc["error"] == "no_login_key"
        with open_token(
            "Virtual PCD 00 00", trust=resolve_trust(software_token_state=token_state)
        ) as token:
            token.verify_pin(USER_PIN)
            token.generate_key(DEFAULT_LOGIN_CONTAINER, Algorithm.SM2, ContainerUsage.LOGIN)
        r = client.call("POST", "/v1/authenticate", {"challenge": challenge, "pin": USER_PIN})
    assert r.status == 200, r.doc
    assert set(r.doc) == {"serial", "signature", "public_key", "binding"}
    assert r.doc["serial"] == card.token.serial and r.doc["binding"] == "session-42"
    key = sm2.load_der_public_key(_b64(r.doc["public_key"]))
    signature = _b64(r.doc["signature"])
    key.verify(signature, login_message(ORIGIN, challenge), uid=sm2.DEFAULT_UID)
    # relayed by a phishing origin (here: another allowed one), it never verifies for the bank
    phish = Client(agent, OTHER_ORIGIN)
    phish.pair()
    relayed = phish.call("POST", "/v1/authenticate", {"challenge": challenge, "pin": USER_PIN})
    with pytest.raises(EbankAuthError):
        key.verify(_b64(relayed.doc["signature"]), login_message(ORIGIN, challenge),
                   uid=sm2.DEFAULT_UID)  # fmt: skip
    for bad in ("5a" * 31, "zz" * 32, 7, None):
        refused = client.call("POST", "/v1/authenticate", {"challenge": bad, "pin": USER_PIN})
        assert (refused.status, refused.doc["error"]) == (400, "bad_request")


def test_a_serial_not_inserted_is_no_token(client: Client, enrolled: dict[str, Any]) -> None:
    r = client.call("POST", "/v1/sign", {"transaction": make_tx().to_dict(), "pin": USER_PIN,
                                         "serial": "EBK000000000000"})  # fmt: skip
    assert (r.status, r.doc["error"]) == (404, "no_token")
    assert "insert" in r.doc["message"]


def test_second_token_by_serial_and_pin_lock(
    pcscd_vpcd: PcscdVpcd, client: Client, card: CountingCard, tmp_path: Path
) -> None:
    second = SoftToken(tmp_path / "second", ReadingUser(), retry_limit=2,
                       manufacturer=card.token.manufacturer)  # fmt: skip
    with pcscd_vpcd.inserted(second, reader=1):
        listed = client.call("GET", "/v1/tokens").doc["tokens"]
        assert sorted(t["serial"] for t in listed) == sorted([card.token.serial, second.serial])
        body = {"pin": "000000", "serial": second.serial}
        first = client.call("POST", "/v1/enrol", body)
        assert (first.status, first.doc["retries_left"]) == (401, 1)
        last = client.call("POST", "/v1/enrol", body)
        assert (last.status, last.doc["retries_left"]) == (401, 0)
        locked = client.call("POST", "/v1/enrol", {"pin": USER_PIN, "serial": second.serial})
        assert (locked.status, locked.doc["error"]) == (423, "pin_locked")
        assert "unblock" in locked.doc["message"]
        # the first token was not touched
        assert (
            client.call("POST", "/v1/enrol", {"pin": USER_PIN, "serial": card.token.serial}).status
            == 200
        )


def test_no_token_and_not_genuine(card: CountingCard, token_state: Path) -> None:
    empty = AgentConfig(origins=(ORIGIN,), port=0, reader="Virtual PCD 00 01")
    with create_agent(empty, software_token_state=token_state).start() as agent:
        c = Client(agent)
        c.pair()
        r = c.call("POST", "/v1/enrol", {"pin": USER_PIN})
        assert (r.status, r.doc["error"]) == (404, "no_token")
        listed = c.call("GET", "/v1/tokens")
        assert listed.status == 200 and listed.doc["tokens"] == []
        assert listed.doc["error"] == "no_token" and listed.doc["message"]
    stranger = Manufacturer.in_memory()  # another maker's root: our token does not chain to it
    trust = TrustConfig((stranger.root,), stranger.allowlist)
    with AgentServer(AgentConfig(origins=(ORIGIN,), port=0), trust).start() as agent:
        c = Client(agent)
        c.pair()
        before = card.token.state.user_pin.remaining
        r = c.call("POST", "/v1/sign", {"transaction": make_tx().to_dict(), "pin": USER_PIN})
        assert (r.status, r.doc["error"]) == (502, "not_genuine")
        assert card.token.state.user_pin.remaining == before  # the PIN never went to it
        listed = c.call("GET", "/v1/tokens").doc["tokens"]
        assert [t["genuine"] for t in listed] == [False]


def _press(screen: WebScreen, choice: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with urllib.request.urlopen(screen.url + "state.json", timeout=5) as resp:
            if json.load(resp)["showing"]:
                break
        time.sleep(0.02)
    with urllib.request.urlopen(screen.url, timeout=5) as resp:
        page = resp.read().decode()
    nonce = page.split('name="nonce" value="', 1)[1].split('"', 1)[0]
    form = urllib.parse.urlencode({"nonce": nonce, "choice": choice}).encode()
    req = urllib.request.Request(screen.url + "press", data=form, method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


@pytest.fixture
def web_screen(card: CountingCard) -> Iterator[WebScreen]:
    screen = WebScreen()
    old = card.token.display
    card.token.display = screen
    try:
        yield screen
    finally:
        card.token.display = old
        screen.close()


def test_one_operation_at_a_time_with_the_token_screen_pressed_over_http(
    client: Client, enrolled: dict[str, Any], web_screen: WebScreen
) -> None:
    tx = make_tx(tx_id="T-web")
    results: dict[str, Any] = {}

    def sign() -> None:
        results["first"] = client.call(
            "POST", "/v1/sign", {"transaction": tx.to_dict(), "pin": USER_PIN}
        )

    thread = threading.Thread(target=sign, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not web_screen.state()["showing"] and time.monotonic() < deadline:
        time.sleep(0.02)
    other = client.call(
        "POST", "/v1/sign", {"transaction": make_tx(tx_id="T-2").to_dict(), "pin": USER_PIN}
    )
    assert (other.status, other.doc["error"]) == (503, "busy")  # after busy_timeout, not for ever
    assert client.call("GET", "/v1/status").status == 200  # no token needed: never busy
    _press(web_screen, "approve")
    thread.join(20)
    first = results["first"]
    assert first.status == 200, first.doc
    verify_confirmation(_public_key(enrolled), _b64(first.doc["signature"]), tx)
    assert web_screen.shown[-1] == tx.display_text("zh")
