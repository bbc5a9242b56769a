"""Fixtures for the agent tests: the software token behind a real isolated pcscd (vpcd), and
the agent serving on loopback in this process (its pyscard talks to that pcscd)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ebank_auth.agent import AgentConfig, AgentServer, create_agent
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import ReadingUser
from plugins.pcscd import PcscdVpcd, pcscd_vpcd  # noqa: F401

USER_PIN = "314159"
ORIGIN = "http://bank.test:5000"
OTHER_ORIGIN = "https://other-bank.test"


class CountingCard:
    """The software token as the reader sees it, counting the command APDUs that reach it (so a
    test can show a refused request never reached the token)."""

    def __init__(self, token: SoftToken) -> None:
        self.token = token
        self.apdus = 0
        self._lock = threading.Lock()

    def atr(self) -> bytes:
        return self.token.atr()

    def power_on(self) -> None:
        self.token.power_on()

    def power_off(self) -> None:
        self.token.power_off()

    def reset(self) -> None:
        self.token.reset()

    def process_apdu(self, apdu: bytes) -> bytes:
        with self._lock:
            self.apdus += 1
        return self.token.process_apdu(apdu)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    doc: Any


class Client:
    """A page of ``origin`` calling the agent (http.client: every header is ours to set)."""

    def __init__(self, agent: AgentServer, origin: str | None = ORIGIN) -> None:
        self.agent = agent
        self.origin = origin
        self.pairing: str | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        pair: bool = True,
        timeout: float = 60,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.agent.port, timeout=timeout)
        sent: dict[str, str] = {"Host": f"127.0.0.1:{self.agent.port}"}
        if self.origin is not None:
            sent["Origin"] = self.origin
        if pair and self.pairing is not None:
            sent["Authorization"] = f"Bearer {self.pairing}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            text = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        doc = json.loads(text) if text else None
        return Reply(resp.status, hdrs, doc)

    def pair(self, binding: str = "session-42") -> str:
        r = self.call("POST", "/v1/pair", {"binding": binding}, pair=False)
        assert r.status == 200, r.doc
        self.pairing = r.doc["pairing"]
        return self.pairing


def make_tx(memo: str = "rent", tx_id: str = "T1", amount: str = "1234.50") -> Transaction:
    return Transaction(
        tx_id=tx_id,
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal(amount),
        currency="CNY",
        timestamp=datetime(2026, 11, 22, 10, 30, tzinfo=timezone.utc),
        memo=memo,
    )


@pytest.fixture(scope="module")
def token_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent") / "token"


@pytest.fixture(scope="module")
def card(pcscd_vpcd: PcscdVpcd, token_state: Path) -> Iterator[CountingCard]:  # noqa: F811
    """The software token (a simulated customer who rejects screens saying REJECT) in
    ``Virtual PCD 00 00`` for the whole module."""
    counting = CountingCard(SoftToken(token_state, ReadingUser(), confirm_timeout=20))
    with pcscd_vpcd.inserted(counting, reader=0):
        yield counting


@pytest.fixture(scope="module")
def agent(card: CountingCard, token_state: Path) -> Iterator[AgentServer]:
    config = AgentConfig(origins=(ORIGIN, OTHER_ORIGIN), port=0, busy_timeout=0.5)
    with create_agent(config, software_token_state=token_state).start() as server:
        yield server


@pytest.fixture
def client(agent: AgentServer) -> Client:
    c = Client(agent)
    c.pair()
    return c
