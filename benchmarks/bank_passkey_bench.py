"""The bank app's second login factor: a passkey against an SMS code, server side, in the
same run.

    .venv/bin/python benchmarks/bank_passkey_bench.py [--rounds 40]

The reference bank app (examples/bank_app) runs in-process behind Flask's test client on its
real SQLite store (``synchronous=FULL``), with CSRF on.  Each round logs the demo customer in
up to the second step (username, password: not timed), then times the server's share of the
second factor:

* passkey: ``POST /login/passkey/begin`` + ``POST /login/passkey`` (the assertion is made
  between the two by an in-process P-256 signer, not timed);
* SMS code (the baseline, the app's default second factor): ``POST /login/sms`` (a code
  issued and written to the file outbox) + ``POST /login/code``;
* bare ``PasskeyServer`` begin + complete on a SQLite store of the same kind: what the
  library itself costs, so the app's own overhead (session, policy, audit) is the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.client import DefaultClientDataCollector
from fido2.cose import ES256
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    RegistrationResponse,
)

from ebank_auth.store import SQLiteStore
from ebank_auth.webauthn import PasskeyServer, RelyingParty

APP_DIR = Path(__file__).resolve().parents[1] / "examples" / "bank_app"
sys.path.insert(0, str(APP_DIR))

ORIGIN = "http://localhost"  # Flask's test client talks to localhost:80
F = AuthenticatorData.FLAG
NEW_PASSWORD = "Harbour7Lantern"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


class Signer:
    """An in-process authenticator (P-256) answering at ``ORIGIN`` for RP ID localhost."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cred_id = os.urandom(32)
        self.counter = 0
        self.cose = ES256.from_cryptography_key(self.key.public_key())
        self.user_handle = b""

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        opts = PublicKeyCredentialCreationOptions.from_dict(options)
        self.user_handle = bytes(opts.user.id)
        cd, _ = DefaultClientDataCollector(ORIGIN).collect_client_data(opts)
        ad = AuthenticatorData.create(
            sha256(b"localhost").digest(),
            F.UP | F.UV | F.AT,
            0,
            AttestedCredentialData.create(bytes(16), self.cred_id, self.cose),
        )
        att = AttestationObject.create("none", ad, {})
        r = RegistrationResponse(
            raw_id=self.cred_id,
            response=AuthenticatorAttestationResponse(client_data=cd, attestation_object=att),
        )
        return json.loads(json.dumps(dict(r)))

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        opts = PublicKeyCredentialRequestOptions.from_dict(options)
        cd, _ = DefaultClientDataCollector(ORIGIN).collect_client_data(opts)
        self.counter += 1
        ad = AuthenticatorData.create(sha256(b"localhost").digest(), F.UP | F.UV, self.counter)
        sig = self.key.sign(bytes(ad) + cd.hash, ec.ECDSA(hashes.SHA256()))
        r = AuthenticationResponse(
            raw_id=self.cred_id,
            response=AuthenticatorAssertionResponse(
                client_data=cd, authenticator_data=ad, signature=sig, user_handle=self.user_handle
            ),
        )
        return json.loads(json.dumps(dict(r)))


class Clock:
    """The app's clock: Beijing daytime (no night-login code), moved past the SMS cooldown."""

    def __init__(self) -> None:
        now = datetime.now(ZoneInfo("Asia/Shanghai"))
        target = now.replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)
        self.offset = (target - now).total_seconds()

    def __call__(self) -> float:
        return time.time() + self.offset


class Customer:
    def __init__(self, state: Path) -> None:
        from app import create_app

        self.clock = Clock()
        self.app = create_app(state, argon2_memory_kib=1024, clock=self.clock, idle_seconds=3600)
        self.services = self.app.extensions["bank"]
        self.services.change_password("zhangsan", "DemoPass2026", NEW_PASSWORD)
        self.web = self.app.test_client()

    def token(self, url: str) -> str:
        page = self.web.get(url).get_data(as_text=True)
        m = CSRF.search(page) or META.search(page)
        assert m, url
        return m.group(1)

    def post(self, url: str, data: dict[str, str], token: str) -> Any:
        return self.web.post(url, data={"csrf_token": token, **data})

    def code(self) -> str:
        m = CODE.search(self.services.outbox.messages()[-1].text)
        assert m
        return m.group(1)

    def to_second_step(self) -> str:
        self.clock.offset += 61  # one SMS code per minute per customer
        self.post("/login", {"username": "zhangsan"}, self.token("/login"))
        r = self.post("/login/password", {"password": NEW_PASSWORD}, self.token("/login/password"))
        return str(r.location)

    def logout(self) -> None:
        self.post("/logout", {}, self.token("/accounts"))


def enrol(c: Customer, signer: Signer) -> None:
    """First login by SMS (binds the device), then register the passkey."""
    assert c.to_second_step().endswith("/login/code")
    r = c.post("/login/code", {"code": c.code()}, c.token("/login/code"))
    assert r.location.endswith("/accounts")
    c.clock.offset += 61
    c.post("/passkeys/code", {}, c.token("/passkeys"))
    c.post("/passkeys/verify", {"code": c.code()}, c.token("/passkeys"))
    opts = c.web.post(
        "/passkeys/register/begin", json={}, headers={"X-CSRF-Token": c.token("/passkeys")}
    ).get_json()["options"]
    r = c.post(
        "/passkeys/register/complete",
        {"credential": json.dumps(signer.create(opts))},
        c.token("/passkeys"),
    )
    assert r.location.endswith("/passkeys")
    c.logout()


def bench_passkey(c: Customer, signer: Signer, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        assert c.to_second_step().endswith("/login/second")
        token = c.token("/login/second")
        t0 = time.perf_counter()
        r = c.web.post("/login/passkey/begin", json={}, headers={"X-CSRF-Token": token})
        t1 = time.perf_counter()
        assertion = json.dumps(signer.get(r.get_json()["options"]))
        t2 = time.perf_counter()
        r = c.post("/login/passkey", {"credential": assertion}, token)
        t3 = time.perf_counter()
        assert r.location.endswith("/accounts"), r.get_data(as_text=True)
        times.append((t1 - t0) + (t3 - t2))
        c.logout()
    return times


def bench_sms(c: Customer, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        c.clock.offset += 86400  # the next day, same hour: 10 codes per customer per day
        assert c.to_second_step().endswith("/login/second")
        token = c.token("/login/second")
        t0 = time.perf_counter()
        r = c.post("/login/sms", {}, token)
        assert r.status_code == 302, r.get_data(as_text=True)
        t1 = time.perf_counter()
        code = c.code()  # the customer reads the SMS: not timed
        t2 = time.perf_counter()
        r = c.post("/login/code", {"code": code}, token)
        t3 = time.perf_counter()
        assert r.location.endswith("/accounts"), r.get_data(as_text=True)
        times.append((t1 - t0) + (t3 - t2))
        c.logout()
    return times


def bench_library(path: str, rounds: int) -> list[float]:
    store = SQLiteStore(path)
    server = PasskeyServer(store, RelyingParty("localhost", "Bench", (ORIGIN,)))
    s = Signer()
    c = server.register_begin("bench", name="bench")
    server.register_complete(c.handle, s.create(c.options))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        c = server.authenticate_begin("bench")
        t1 = time.perf_counter()
        response = s.get(c.options)
        t2 = time.perf_counter()
        server.authenticate_complete(c.handle, response)
        times.append((t1 - t0) + (time.perf_counter() - t2))
    store.close()
    return times


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as d:
        c = Customer(Path(d) / "state")
        signer = Signer()
        enrol(c, signer)
        sms = bench_sms(c, args.rounds)
        passkey = bench_passkey(c, signer, args.rounds)
        library = bench_library(os.path.join(d, "lib.db"), args.rounds)
    base = statistics.median(sms)
    print("| second factor (server side) | median ms | p95 ms | ÷ SMS code |")
    print("|---|---|---|---|")
    for name, xs in (
        ("SMS code: issue + verify (baseline)", sms),
        ("passkey: begin + complete, through the app", passkey),
        ("bare PasskeyServer begin + complete, SQLite FULL", library),
    ):
        med = statistics.median(xs)
        print(f"| {name} | {med * 1000:.2f} | {p95(xs) * 1000:.2f} | {med / base:.2f}× |")


if __name__ == "__main__":
    main()
