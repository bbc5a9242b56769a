"""Passkey sign-in speed: PasskeyServer (state in a store, typed checks, counter
compare-and-set) against bare python-fido2 ``Fido2Server.authenticate_complete`` on the same
responses, in the same run.

    .venv/bin/python benchmarks/webauthn_bench.py [--rounds 300]

The assertions are made ahead of timing by an in-process P-256 signer (no authenticator is
timed); what is timed is the server side of one sign-in: begin + complete.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.client import DefaultClientDataCollector
from fido2.cose import ES256
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    RegistrationResponse,
)

from ebank_auth.store import MemoryStore, SQLiteStore, Store
from ebank_auth.webauthn import PasskeyServer, RelyingParty

ORIGIN = "https://bank.example"
RP = RelyingParty("bank.example", "Bench Bank", (ORIGIN,))
F = AuthenticatorData.FLAG


class Signer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cred_id = os.urandom(32)
        self.counter = 0
        self.cose = ES256.from_cryptography_key(self.key.public_key())

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        opts = PublicKeyCredentialCreationOptions.from_dict(options)
        cd, _ = DefaultClientDataCollector(ORIGIN).collect_client_data(opts)
        ad = AuthenticatorData.create(
            sha256(b"bank.example").digest(),
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
        ad = AuthenticatorData.create(sha256(b"bank.example").digest(), F.UP | F.UV, self.counter)
        sig = self.key.sign(bytes(ad) + cd.hash, ec.ECDSA(hashes.SHA256()))
        r = AuthenticationResponse(
            raw_id=self.cred_id,
            response=AuthenticatorAssertionResponse(
                client_data=cd, authenticator_data=ad, signature=sig
            ),
        )
        return json.loads(json.dumps(dict(r)))


def bench_server(store: Store, rounds: int) -> float:
    server = PasskeyServer(store, RP)
    s = Signer()
    c = server.register_begin("bench", name="bench")
    server.register_complete(c.handle, s.create(c.options))
    work = []
    for _ in range(rounds):
        c = server.authenticate_begin("bench")
        work.append((c.handle, s.get(c.options)))
    times = []
    for handle, response in work:
        t = time.perf_counter()
        server.authenticate_begin("bench")  # the begin half, timed like in a real sign-in
        server.authenticate_complete(handle, response)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_bare(rounds: int) -> float:
    fido = Fido2Server(PublicKeyCredentialRpEntity(name="b", id="bank.example"))
    s = Signer()
    cred = AttestedCredentialData.create(bytes(16), s.cred_id, s.cose)
    work = []
    for _ in range(rounds):
        options, state = fido.authenticate_begin([cred])
        work.append((state, s.get(dict(options.public_key))))
    times = []
    for state, response in work:
        t = time.perf_counter()
        fido.authenticate_begin([cred])
        fido.authenticate_complete(state, [cred], response)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}"
    )
    bare = bench_bare(args.rounds)
    mem = bench_server(MemoryStore(), args.rounds)
    with tempfile.TemporaryDirectory() as d:
        full = SQLiteStore(os.path.join(d, "full.db"))
        sqlite_full = bench_server(full, args.rounds)
        full.close()
        normal = SQLiteStore(os.path.join(d, "normal.db"), synchronous="NORMAL")
        sqlite_normal = bench_server(normal, args.rounds)
        normal.close()
    rows = [
        ("bare python-fido2 begin + complete (baseline)", bare),
        ("PasskeyServer, memory store", mem),
        ("PasskeyServer, SQLite synchronous=FULL", sqlite_full),
        ("PasskeyServer, SQLite synchronous=NORMAL", sqlite_normal),
    ]
    for name, sec in rows:
        print(f"| {name} | {sec * 1e3:.2f} ms | {1 / sec:,.0f}/s | {sec / bare:.1f}× |")


if __name__ == "__main__":
    main()
