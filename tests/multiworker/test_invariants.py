"""The security invariants hold across gunicorn workers (issue 16, item 4).

Three sync workers serve the unchanged bank app over one network store (PostgreSQL with a fresh
schema, Redis with a fresh prefix, a 3-master Redis Cluster).  Parallel HTTP clients (threads,
each with its own connection, released together by a barrier) race for the same counter, code or
transaction; the access log (``%(p)s``) shows that more than one worker answered.  The store is
then read through the app's own wiring from the test process:

* exactly 5 login failures lock the account: 19 parallel wrong passwords get exactly five "wrong
  password" answers, the rest and then the right password are refused as locked, the counter
  is 5, one lock notice SMS was sent;
* a one-time code is accepted once: the same login code posted in parallel from copies of the
  same session logs in once;
* no replayed transaction: the same /transfer/confirm posted in parallel books once, the
  balance is debited once;
* no lost audit record: the audit chain checks, and the records of these events match the
  answers the clients got, one for one.

19 wrong passwords, not 20: the app also limits password posts per customer to 20 a minute, and
the 20th post is the right password (which must be refused by the lock, not by the rate limit).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from plugins.bank_workers import (
    WORKERS,
    Gunicorn,
    Node,
    client_for,
    clone,
    in_parallel,
    logged_in,
    pg_schema_url,
    redis_prefix_url,
    start_transfer,
    token,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WRONG = 19
RACERS = 8


@pytest.fixture(params=["postgresql", "redis", "redis-cluster"])
def deployment(request: pytest.FixtureRequest, deploy: Any) -> tuple[Gunicorn, Node]:
    if request.param == "postgresql":
        url = pg_schema_url(request.getfixturevalue("postgres_url"))
    elif request.param == "redis":
        url = redis_prefix_url(request.getfixturevalue("redis_url"))
    else:
        url = redis_prefix_url(request.getfixturevalue("redis_cluster_url"))
    server, node = deploy(url, customers=4)
    return server, node


def password_page(server: Gunicorn, c: Any) -> tuple[Any, str]:
    """A fresh browser at the password page of ``c``: (client, CSRF token)."""
    http = client_for(server, c)
    page = http.get("/login")
    assert http.post("/login", {"csrf_token": token(page), "username": c.username}).status == 302
    page = http.get("/login/password")
    assert page.status == 200
    return http, token(page)


def test_invariants_across_workers(deployment: tuple[Gunicorn, Node]) -> None:
    server, node = deployment
    victim, coder, payer = node.customer(), node.customer(), node.customer()

    # ---- exactly five login failures, whatever the concurrency
    browsers = [password_page(server, victim) for _ in range(WRONG)]
    replies = in_parallel(
        [
            lambda b=b: b[0].post("/login/password", {"csrf_token": b[1], "password": "Wrong-1x"})
            for b in browsers
        ]
    )
    statuses = sorted(r.status for r in replies)
    assert statuses.count(401) == 5, statuses  # "wrong password": exactly five
    assert statuses.count(403) == WRONG - 5, statuses  # locked
    http, csrf = password_page(server, victim)
    right = http.post("/login/password", {"csrf_token": csrf, "password": "Harbour7Lantern"})
    assert right.status == 403 and right.location != "/login/code"  # the lock holds
    assert node.services.lockout.status(victim.username).failures == 5
    texts = node.sms_to(victim)
    assert len(texts) == 1, texts  # one lock notice, no code
    # one audit record per "wrong password" answer, numbered 1..5 by the shared counter; one
    # lock and one notice (attempts refused as locked are answered without a password check
    # and without a password_login record: LoginLockout raises AccountLocked first)
    attempts = node.audit_records("password_login", victim.username)
    assert sorted(int(r["details"]["failures"]) for r in attempts) == [1, 2, 3, 4, 5]
    assert len(node.audit_records("login_locked", victim.username)) == 1
    assert len(node.audit_records("login_locked_notified", victim.username)) == 1

    # ---- a one-time code is accepted once
    http = client_for(server, coder)
    page = http.get("/login")
    http.post("/login", {"csrf_token": token(page), "username": coder.username})
    page = http.get("/login/password")
    sent = time.time()
    r = http.post("/login/password", {"csrf_token": token(page), "password": "Harbour7Lantern"})
    assert r.status == 302 and r.location == "/login/code", (r.status, r.location)
    page = http.get("/login/code")
    form = {"csrf_token": token(page), "code": node.outbox.code_for(coder.phone, sent)}
    racers = [clone(http, coder) for _ in range(RACERS)]
    replies = in_parallel([lambda h=h: h.post("/login/code", form) for h in racers])
    wins = [r for r in replies if r.status == 302 and r.location == "/accounts"]
    assert len(wins) == 1, [(r.status, r.location) for r in replies]
    assert len(node.audit_records("login", coder.username)) == 1

    # ---- no replayed transaction
    http = logged_in(server, node, payer)
    before = node.balance(payer)
    tx_id, form = start_transfer(http, node, payer)
    racers = [clone(http, payer) for _ in range(RACERS)]
    replies = in_parallel([lambda h=h: h.post("/transfer/confirm", form) for h in racers])
    assert sum(r.status == 200 for r in replies) == 1, [r.status for r in replies]
    assert all(r.status in (200, 400, 401, 409) for r in replies), [r.status for r in replies]
    assert node.booked(payer, tx_id) == 1
    assert node.balance(payer) == before - Decimal("12.34")
    booked = [
        r
        for r in node.audit_records("transfer_booked")
        if (r.get("tx") or {}).get("tx_id") == tx_id
    ]
    assert len(booked) == 1

    # ---- the audit chain holds, and several workers served
    report = node.services.audit.check()
    assert report.ok, report
    served = server.served_by()
    assert len(served) >= 2, served
    assert len(server.worker_pids()) == WORKERS
