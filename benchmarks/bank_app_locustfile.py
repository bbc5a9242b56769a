"""locust users for benchmarks/bank_app_load.py (run by it; see its docstring).

One locust run is one phase, named by ``BANK_LOAD_PHASE``:

- ``login``: every task logs a fresh seeded customer in (each customer once: the app sends
  one SMS code per customer per minute); the logged-in browsers (cookies) and the time of
  their login code are written to ``BANK_LOAD_SESSIONS`` at the end;
- ``accounts``: each user takes one logged-in customer and loads the accounts page;
- ``transfer``: every task takes a logged-in customer whose code cooldown is over and makes
  one small transfer with an SMS code.

Every HTTP request is a locust request (type GET/POST, name the path); every flow is also
one, of type ``flow``, whose time is the sum of its requests' times.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import User, constant, events, task
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bank_app_load import (
    SMS_COOLDOWN,
    FlowError,
    FlowResult,
    LoadCustomer,
    LoopbackClient,
    Outbox,
    accounts_flow,
    login_flow,
    thinker,
    transfer_flow,
)

PHASE = os.environ.get("BANK_LOAD_PHASE", "login")
URL = os.environ.get("BANK_LOAD_URL", "http://127.0.0.1:8000")
OUTBOX = Outbox(Path(os.environ.get("BANK_LOAD_OUTBOX", "outbox")))
SESSIONS = Path(os.environ.get("BANK_LOAD_SESSIONS", "sessions.json"))
NOTES = Path(os.environ.get("BANK_LOAD_NOTES", "notes-{phase}.json").format(phase=PHASE))
THINK_S = float(os.environ.get("BANK_LOAD_THINK", "0"))
THINK = thinker(THINK_S, gevent.sleep)
COUNT = int(os.environ.get("BANK_LOAD_CUSTOMERS", "300"))

fresh: deque[LoadCustomer] = deque(LoadCustomer.number(i) for i in range(COUNT))
logged_in: dict[str, dict[str, Any]] = {}
if PHASE != "login" and SESSIONS.exists():
    logged_in = json.loads(SESSIONS.read_text())
ready: deque[str] = deque(sorted(logged_in, key=lambda u: logged_in[u]["sms_at"]))
notes: list[str] = []


def _request_hook(method: str, name: str, ms: float, length: int, error: Exception | None) -> None:
    events.request.fire(
        request_type=method,
        name=name,
        response_time=ms,
        response_length=length,
        exception=error,
        context={},
        response=None,
        url=None,
    )


def _flow_event(name: str, result: FlowResult | None, error: Exception | None, ms: float) -> None:
    events.request.fire(
        request_type="flow",
        name=name,
        response_time=result.ms if result else ms,
        response_length=0,
        exception=error,
        context={},
        response=None,
        url=None,
    )


def _client(customer: LoadCustomer, cookies: dict[str, str] | None = None) -> LoopbackClient:
    http = LoopbackClient(URL, customer.source_ip, on_request=_request_hook)
    http.cookies.update(cookies or {})
    return http


class Customer(User):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.held: tuple[LoadCustomer, LoopbackClient] | None = None
        if THINK_S > 0:  # customers who read pages do not all click in the same second
            gevent.sleep(random.uniform(0, 2 * THINK_S))
        if PHASE == "accounts":
            if not ready:
                self._end("no logged-in customer for the accounts phase")
            name = ready[0]
            ready.rotate(-1)
            c = LoadCustomer.number(int(logged_in[name]["index"]))
            self.held = (c, _client(c, logged_in[name]["cookies"]))

    def _end(self, why: str) -> None:
        if why not in notes:
            notes.append(why)
        gevent.spawn(self.environment.runner.quit)
        raise StopUser()

    def _run(self, name: str, flow: Any) -> FlowResult | None:
        t0 = time.perf_counter()
        try:
            result: FlowResult = flow()
        except FlowError as exc:
            _flow_event(name, None, exc, (time.perf_counter() - t0) * 1000)
            return None
        _flow_event(name, result, None, 0.0)
        return result

    @task
    def step(self) -> None:
        if PHASE == "login":
            if not fresh:
                self._end(f"all {COUNT} seeded customers logged in: the phase ended early")
            c = fresh.popleft()
            http = _client(c)
            result = self._run("login", lambda: login_flow(http, c, OUTBOX, THINK))
            http.close()
            if result is not None:
                logged_in[c.username] = {
                    "index": c.index,
                    "cookies": dict(http.cookies),
                    "sms_at": result.sms_at,
                }
        elif PHASE == "accounts":
            assert self.held is not None
            c, http = self.held
            self._run("accounts", lambda: accounts_flow(http, c, THINK))
        elif PHASE == "transfer":
            if not ready:
                self._end(f"all {len(logged_in)} logged-in customers transferred: ended early")
            name = ready.popleft()
            wait = logged_in[name]["sms_at"] + SMS_COOLDOWN + 1 - time.time()
            if wait > 0:  # not counted: the customer is not waiting for the server
                gevent.sleep(wait)
            c = LoadCustomer.number(int(logged_in[name]["index"]))
            http = _client(c, logged_in[name]["cookies"])
            self._run("transfer", lambda: transfer_flow(http, c, OUTBOX, THINK))
            http.close()


@events.test_stop.add_listener
def _save(**_: Any) -> None:
    if PHASE == "login":
        SESSIONS.write_text(json.dumps(logged_in))
    NOTES.write_text(json.dumps(notes))
