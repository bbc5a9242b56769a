"""Two-party SM2 speed vs plain SM2, same run, both backends.

    .venv/bin/python benchmarks/sm2_2p_bench.py [--rounds 7] [--ops 100] [--json]

For each backend: a plain SM2 signature and decryption (the baseline, one key in one
process) against the two-party protocol in one process, split into the phone's and the
server's compute.  Baseline and two-party samples alternate round by round, so a busy
machine slows both alike; each figure is the median over the rounds.  Messages cross their
byte encodings (to_bytes/from_bytes), as they would over HTTP.  Target (issue 13): phone +
server compute per signature <= 3x one plain signature of the same backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from ebank_auth.crypto import _backend, backend_info, sm2, sm2_2p

MSG = b'{"type":"transfer","amount":"100.00","currency":"CNY","payee":"6217001122334455"}'


def _timed(fn: Callable[[], object], ops: int) -> float:
    t = time.perf_counter()
    for _ in range(ops):
        fn()
    return (time.perf_counter() - t) / ops


def _sign_split(
    phone: sm2_2p.PhoneShare, server: sm2_2p.ServerShare, ops: int
) -> tuple[float, float]:
    """Seconds per signature spent in the phone's and in the server's steps."""
    t_phone = t_server = 0.0
    for _ in range(ops):
        t0 = time.perf_counter()
        challenge, sst = sm2_2p.server_sign_begin(server, MSG)
        wire_c = challenge.to_bytes()
        t1 = time.perf_counter()
        request, pst = sm2_2p.phone_sign_begin(phone, sm2_2p.SignChallenge.from_bytes(wire_c), MSG)
        wire_q = request.to_bytes()
        t2 = time.perf_counter()
        response = sm2_2p.server_sign_complete(sst, sm2_2p.SignRequest.from_bytes(wire_q))
        wire_r = response.to_bytes()
        t3 = time.perf_counter()
        sm2_2p.phone_sign_complete(pst, sm2_2p.SignResponse.from_bytes(wire_r))
        t4 = time.perf_counter()
        t_server += (t1 - t0) + (t3 - t2)
        t_phone += (t2 - t1) + (t4 - t3)
    return t_phone / ops, t_server / ops


def _decrypt_split(
    phone: sm2_2p.PhoneShare, server: sm2_2p.ServerShare, ct: bytes, ops: int
) -> tuple[float, float]:
    t_phone = t_server = 0.0
    for _ in range(ops):
        t0 = time.perf_counter()
        request, pst = sm2_2p.phone_decrypt_begin(phone, ct)
        wire_q = request.to_bytes()
        t1 = time.perf_counter()
        response = sm2_2p.server_decrypt(server, sm2_2p.DecryptRequest.from_bytes(wire_q))
        wire_r = response.to_bytes()
        t2 = time.perf_counter()
        sm2_2p.phone_decrypt_complete(pst, sm2_2p.DecryptResponse.from_bytes(wire_r))
        t3 = time.perf_counter()
        t_phone += (t1 - t0) + (t3 - t2)
        t_server += t2 - t1
    return t_phone / ops, t_server / ops


def bench_backend(backend: str, rounds: int, ops: int) -> dict[str, float]:
    key = sm2.generate_private_key(backend=backend)
    phone, server, pub = sm2_2p.local_keygen(backend=backend)
    ct_plain = key.public_key().encrypt(b"a 16-byte SM4 key")
    ct_joint = pub.encrypt(b"a 16-byte SM4 key")
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    for _ in range(rounds):
        add("plain_sign", _timed(lambda: key.sign(MSG), ops))
        ph, sv = _sign_split(phone, server, ops)
        add("joint_sign_phone", ph)
        add("joint_sign_server", sv)
        add("joint_sign_total", ph + sv)
        add("plain_decrypt", _timed(lambda: key.decrypt(ct_plain), ops))
        ph, sv = _decrypt_split(phone, server, ct_joint, ops)
        add("joint_decrypt_phone", ph)
        add("joint_decrypt_server", sv)
        add("joint_decrypt_total", ph + sv)
        add("keygen", _timed(lambda: sm2_2p.local_keygen(backend=backend), max(1, ops // 10)))
    out = {name: statistics.median(v) for name, v in samples.items()}
    out["sign_ratio"] = out["joint_sign_total"] / out["plain_sign"]
    out["decrypt_ratio"] = out["joint_decrypt_total"] / out["plain_decrypt"]
    return out


def message_sizes() -> dict[str, int]:
    phone, server, _ = sm2_2p.local_keygen()
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    request, pst = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    response = sm2_2p.server_sign_complete(sst, request)
    sm2_2p.phone_sign_complete(pst, response)
    return {
        "SignChallenge": len(challenge.to_bytes()),
        "SignRequest": len(request.to_bytes()),
        "SignResponse": len(response.to_bytes()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    info = backend_info()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {info.details.get('openssl', '')}",
        "messages_per_signature": "3 (challenge with the transaction; request; response)",
        "sizes": message_sizes(),
        "backends": {},
    }
    for backend in _backend.available_sm2_backends():
        result["backends"][backend] = bench_backend(backend, args.rounds, args.ops)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    print(f"messages per signature: {result['messages_per_signature']}; sizes {result['sizes']}")
    print("| backend | operation | plain ms | two-party ms (phone + server) | ratio |")
    print("|---|---|---|---|---|")
    for backend, r in result["backends"].items():
        print(
            f"| {backend} | sign | {r['plain_sign'] * 1e3:.3f} | {r['joint_sign_total'] * 1e3:.3f}"
            f" ({r['joint_sign_phone'] * 1e3:.3f} + {r['joint_sign_server'] * 1e3:.3f})"
            f" | {r['sign_ratio']:.2f}x |"
        )
        print(
            f"| {backend} | decrypt | {r['plain_decrypt'] * 1e3:.3f} | "
            f"{r['joint_decrypt_total'] * 1e3:.3f} ({r['joint_decrypt_phone'] * 1e3:.3f} + "
            f"{r['joint_decrypt_server'] * 1e3:.3f}) | {r['decrypt_ratio']:.2f}x |"
        )
        print(f"| {backend} | key generation (4 messages) | | {r['keygen'] * 1e3:.3f} | |")


if __name__ == "__main__":
    main()
