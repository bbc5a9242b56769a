"""What the local agent adds to a confirm-and-sign: HTTP, JSON, pairing and a fresh token session.

Both paths reach the same software token (display: auto-approve) through a real isolated pcscd
(tests/plugins/pcscd.py) and do the same token work per signature — open the token (select,
attestation, secure channel), verify the PIN, confirm-and-sign, close:

  baseline  open_token -> verify_pin -> confirm_and_sign -> close, called in this process
  agent     POST /v1/sign to the agent on loopback (http.client), which does the above

Also timed: GET /v1/status (the HTTP layer alone: Host/Origin checks, JSON answer).
Run:  .venv/bin/python benchmarks/agent_bench.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent.conftest import make_tx  # noqa: E402  (tests/agent: the tests' transaction)
from ebank_auth.agent import AgentConfig, create_agent  # noqa: E402
from ebank_auth.usbkey import open_token, resolve_trust  # noqa: E402
from ebank_auth.usbkey.emulator.card import SoftToken  # noqa: E402
from ebank_auth.usbkey.emulator.display import AutoApprove  # noqa: E402
from plugins.pcscd import PRIMARY_SOCKET, start_pcscd_vpcd  # noqa: E402

PIN = "314159"
ORIGIN = "https://bank.example"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed(fn: Callable[[int], object], rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ebank-agent-bench-")) / "token"
    token = SoftToken(state, AutoApprove())
    svc = start_pcscd_vpcd(PRIMARY_SOCKET)
    trust = resolve_trust(software_token_state=state)
    try:
        with svc.inserted(token, reader=0):
            with open_token(svc.readers[0], trust=trust) as t:
                t.verify_pin(PIN)
                t.generate_key()

            def direct(i: int) -> None:
                with open_token(trust=trust) as t:
                    t.verify_pin(PIN)
                    t.confirm_and_sign(make_tx(tx_id=f"D{i}"))

            config = AgentConfig(origins=(ORIGIN,), port=0)
            with create_agent(config, software_token_state=state).start() as agent:

                def call(method: str, path: str, body: object = None, auth: str = "") -> dict:
                    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=60)
                    headers = {"Origin": ORIGIN, "Content-Type": "application/json"}
                    if auth:
                        headers["Authorization"] = f"Bearer {auth}"
                    data = None if body is None else json.dumps(body).encode()
                    conn.request(method, path, body=data, headers=headers)
                    resp = conn.getresponse()
                    doc = json.loads(resp.read())
                    conn.close()
                    assert resp.status == 200, doc
                    return doc

                pairing = call("POST", "/v1/pair", {"binding": "bench"})["pairing"]

                def via_agent(i: int) -> None:
                    body = {"transaction": make_tx(tx_id=f"A{i}").to_dict(), "pin": PIN}
                    call("POST", "/v1/sign", body, pairing)

                rows: dict[str, list[float]] = {}
                # interleave the two paths so a busy machine slows both alike
                for _ in range(2):
                    rows.setdefault("baseline: open + PIN + confirm-and-sign", []).extend(
                        timed(direct, args.rounds // 2)
                    )
                    rows.setdefault("agent: POST /v1/sign", []).extend(
                        timed(via_agent, args.rounds // 2)
                    )
                rows["agent: GET /v1/status"] = timed(
                    lambda i: call("GET", "/v1/status"), args.rounds
                )
    finally:
        svc.close()
    print("| operation | median ms | p95 ms | n |")
    print("|---|---:|---:|---:|")
    for op, values in rows.items():
        print(f"| {op} | {statistics.median(values):.2f} | {pct(values, 95):.2f} | {len(values)} |")
    base = statistics.median(rows["baseline: open + PIN + confirm-and-sign"])
    agent_ms = statistics.median(rows["agent: POST /v1/sign"])
    print(f"\nagent / baseline (medians): {agent_ms / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
