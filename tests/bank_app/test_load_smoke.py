"""The load benchmark's flows (benchmarks/bank_app_load.py) run once each with two
customers, so the benchmark does not rot between load runs.  It is not a timing test: it
checks that each flow still gets through the real app (served over loopback HTTP by
werkzeug, real SQLite, real argon2id with less memory, CSRF on), each customer from its
own loopback address, as in the load run.  The load run itself needs the ``bench`` extra
(locust, waitress); this test needs neither."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bank_app_load import (
    SMALL_AMOUNT,
    FlowResult,
    LoopbackClient,
    Outbox,
    accounts_flow,
    login_flow,
    seed_customers,
    transfer_flow,
)

pytestmark = pytest.mark.timeout(60)  # a few seconds; no slow marker, so CI runs it


@pytest.fixture
def served(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def run_each(customers: list[Any], flow: Any) -> list[FlowResult]:
    """The flow for every customer at once (one thread each); re-raises a failure."""
    results: list[Any] = [None] * len(customers)

    def one(k: int) -> None:
        try:
            results[k] = flow(customers[k])
        except BaseException as exc:
            results[k] = exc

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(customers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def test_flows_once_each_with_two_customers(app: Any, served: str) -> None:
    services = app.extensions["bank"]
    customers = seed_customers(services, 2)
    assert len({c.source_ip for c in customers}) == 2
    outbox = Outbox(services.state / "outbox")
    clients = {c.username: LoopbackClient(served, c.source_ip) for c in customers}
    try:
        logins = run_each(customers, lambda c: login_flow(clients[c.username], c, outbox))
        assert all(r.requests == 7 and r.sms_at for r in logins)  # the code step-up was asked
        views = run_each(customers, lambda c: accounts_flow(clients[c.username], c))
        assert all(r.requests == 1 for r in views)
        app.config["TEST_CLOCK"].offset += 61  # one SMS code per customer per minute
        transfers = run_each(customers, lambda c: transfer_flow(clients[c.username], c, outbox))
        assert all(r.requests == 4 for r in transfers)
    finally:
        for http in clients.values():
            http.close()
    for c, t in zip(customers, transfers, strict=True):
        account = services.account(c.account)
        assert account.balance == Decimal("100000.00") - Decimal(SMALL_AMOUNT)
        assert [h["tx_id"] for h in account.history] == [t.details["tx_id"]]
