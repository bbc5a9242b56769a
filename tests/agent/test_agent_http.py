"""The agent's HTTP contract v1 (docs/agent.md): origins, Host, CORS, bodies, pairings.

Against the real agent on loopback, with the software token behind a real isolated pcscd.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ebank_auth import __version__
from ebank_auth.agent import (
    DEFAULT_AGENT_PORT,
    MAX_BODY_BYTES,
    AgentConfig,
    AgentServer,
    Pairings,
    check_origin,
    login_message,
)
from ebank_auth.errors import ConfigurationError, EncodingError

from .conftest import ORIGIN, OTHER_ORIGIN, Client

pytestmark = pytest.mark.pcsc


def test_status_needs_an_allowed_origin_but_no_pairing(agent: AgentServer) -> None:
    r = Client(agent).call("GET", "/v1/status")
    assert (r.status, r.doc) == (
        200,
        {"agent": "ebank-auth", "version": __version__, "protocol": 1},
    )
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in r.headers["vary"]
    assert r.headers["content-type"].startswith("application/json")
    for origin in (None, "https://evil.test", "null", ORIGIN + "/", ORIGIN.replace("5000", "5001")):
        refused = Client(agent, origin).call("GET", "/v1/status")
        assert (refused.status, refused.doc["error"]) == (403, "origin_refused"), origin
        assert "access-control-allow-origin" not in refused.headers


def test_host_header_rebinding_is_refused(agent: AgentServer) -> None:
    c = Client(agent)
    for host in (f"evil.test:{agent.port}", "127.0.0.1", f"127.0.0.1:{agent.port + 1}", ""):
        r = c.call("GET", "/v1/status", headers={"Host": host})
        assert (r.status, r.doc["error"]) == (421, "host_refused"), host
    assert c.call("GET", "/v1/status", headers={"Host": f"localhost:{agent.port}"}).status == 200


def test_cors_preflight(agent: AgentServer) -> None:
    asks = {"Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization"}  # fmt: skip
    r = Client(agent).call("OPTIONS", "/v1/sign", headers=asks)
    assert r.status == 204 and r.doc is None
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    assert r.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    assert r.headers["access-control-max-age"] == "600"
    assert "Origin" in r.headers["vary"]
    assert "access-control-allow-private-network" not in r.headers
    pna = Client(agent).call(
        "OPTIONS", "/v1/sign", headers={**asks, "Access-Control-Request-Private-Network": "true"}
    )
    assert pna.headers["access-control-allow-private-network"] == "true"
    foreign = Client(agent, "https://evil.test").call("OPTIONS", "/v1/sign", headers=asks)
    assert foreign.status == 403 and "access-control-allow-origin" not in foreign.headers


def test_pairing(agent: AgentServer) -> None:
    c = Client(agent)
    r = c.call("POST", "/v1/pair", {"binding": "bank-session 7f3a"})
    assert r.status == 200 and set(r.doc) == {"pairing", "expires_in"}
    assert re.fullmatch(r"[0-9a-f]{64}", r.doc["pairing"]) and r.doc["expires_in"] == 600
    again = c.call("POST", "/v1/pair", {"binding": "bank-session 7f3a"}).doc["pairing"]
    assert again != r.doc["pairing"]
    bad: list[Any] = [{}, {"binding": ""}, {"binding": "x" * 129}, {"binding": "tab\there"},
                      {"binding": "中文"}, {"binding": 7}, {"binding": "ok", "extra": 1}, [], "x"]  # fmt: skip
    for body in bad:
        refused = c.call("POST", "/v1/pair", body)
        assert (refused.status, refused.doc["error"]) == (400, "bad_request"), body
    assert c.call("POST", "/v1/pair", {"binding": "x" * 128}).status == 200


def test_bodies_are_strict_json(agent: AgentServer) -> None:
    c = Client(agent)
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (b'{"binding": "a", "binding": "b"}', {}, 400),  # duplicate field
        (b'{"binding": NaN}', {}, 400),
        (b"\xff\xfe", {}, 400),
        (b'{"binding": "a"}', {"Content-Type": "text/plain"}, 400),  # a "simple" CORS request
        (b'{"binding": "a"}', {"Content-Type": "application/x-www-form-urlencoded"}, 400),
        (b"[" * 5000 + b"]" * 5000, {}, 400),
        (b" " * (MAX_BODY_BYTES + 1), {}, 413),
    ]
    for raw, headers, status in cases:
        r = c.call("POST", "/v1/pair", raw=raw, headers=headers)
        assert (r.status, r.doc["error"]) == (status, "bad_request"), raw[:20]
    ok = c.call("POST", "/v1/pair", raw=b'{"binding":"a"}',
                headers={"Content-Type": "application/json; charset=utf-8"})  # fmt: skip
    assert ok.status == 200
    assert c.call("GET", "/v1/status", raw=b"{}").status == 400  # a GET has no body
    assert c.call("GET", "/v1/nothing").doc["error"] == "not_found"
    assert c.call("POST", "/v1/status", {}).status == 405
    assert c.call("DELETE", "/v1/pair").status == 405
    assert c.call("PATCH", "/v1/pair").status == 405


def test_malformed_http_is_answered_in_json(agent: AgentServer) -> None:
    import json
    import socket

    for request, status in ((b"GET /v1/status HTTP/2.0\r\n\r\n", b"505"),
                            (b"GARBAGE /v1/status HTTP/1.1\r\n\r\n", b"501")):  # fmt: skip
        with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
            s.sendall(request)
            answer = s.makefile("rb").read()
        head, _, body = answer.rpartition(b"\r\n\r\n")  # HTTP/0.9-style: a body, no head
        assert head == b"" or (head.startswith(b"HTTP/1.0 " + status) and b"/json" in head)
        assert json.loads(body)["error"] == "bad_request"


@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/enrol", "/v1/certificate", "/v1/sign",
                                  "/v1/authenticate"])  # fmt: skip
def test_token_endpoints_need_a_pairing_of_the_same_origin(
    agent: AgentServer, card: Any, path: str
) -> None:
    before = card.apdus
    method = "GET" if path == "/v1/tokens" else "POST"
    body = None if method == "GET" else {"pin": "314159"}
    a, b = Client(agent, ORIGIN), Client(agent, OTHER_ORIGIN)
    a.pair()
    b.pairing = a.pairing  # origin B replays A's pairing
    for client, headers in [
        (Client(agent), {}),  # none
        (a, {"Authorization": "Bearer " + "0" * 64}),  # a guess
        (a, {"Authorization": "Basic " + (a.pairing or "")}),
        (b, {}),
    ]:
        r = client.call(method, path, body, headers=headers)
        assert (r.status, r.doc["error"]) == (401, "not_paired")
        assert r.headers["access-control-allow-origin"] == client.origin  # the page can read why
    assert card.apdus == before  # nothing reached the token


def test_pairings_are_origin_bound_expire_and_are_capped() -> None:
    now = [1000.0]
    p = Pairings(idle_seconds=600, limit=3, clock=lambda: now[0])
    first = p.create(ORIGIN, "one")
    assert p.use(first, OTHER_ORIGIN) is None
    found = p.use(first, ORIGIN)
    assert found is not None and found.binding == "one"
    now[0] += 599
    assert p.use(first, ORIGIN) is not None  # use restarts the idle time
    now[0] += 599
    assert p.use(first, ORIGIN) is not None
    now[0] += 600
    assert p.use(first, ORIGIN) is None  # idle for 600 s: gone
    made = [p.create(ORIGIN, str(i)) for i in range(4)]
    assert len(p) == 3 and p.use(made[0], ORIGIN) is None  # the oldest was dropped
    assert all(p.use(s, ORIGIN) is not None for s in made[1:])
    assert p.use("", ORIGIN) is None and p.use("zz" * 32, ORIGIN) is None


def test_configuration_is_checked() -> None:
    assert DEFAULT_AGENT_PORT == 8765
    with pytest.raises(ConfigurationError, match="at least one origin"):
        AgentConfig(origins=())
    for host in ("0.0.0.0", "192.168.1.2", "localhost", ""):
        with pytest.raises(ConfigurationError, match="loopback"):
            AgentConfig(origins=(ORIGIN,), host=host)
    for origin in ("https://bank.test/", "https://Bank.test", "https://bank.test:443",
                   "http://bank.test:80", "bank.test", "https://bank.test/login", "*",
                   "ftp://bank.test", "https://bank.test:99999"):  # fmt: skip
        with pytest.raises(ConfigurationError):
            check_origin(origin)
    for origin in ("https://bank.test", "http://127.0.0.1:5000", "https://[::1]:8443"):
        assert check_origin(origin) == origin


def test_login_message_is_bound_to_the_origin() -> None:
    challenge = "ab" * 32
    msg = login_message(ORIGIN, challenge)
    assert msg == b"ebank-auth-login\x00" + ORIGIN.encode() + b"\x00" + bytes.fromhex(challenge)
    assert login_message(ORIGIN, bytes.fromhex(challenge)) == msg
    assert login_message(OTHER_ORIGIN, challenge) != msg
    for bad in ("ab" * 31, "zz" * 32, b"\x00" * 31, 5):
        with pytest.raises(EncodingError):
            login_message(ORIGIN, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        login_message("https://bank.test/", challenge)
