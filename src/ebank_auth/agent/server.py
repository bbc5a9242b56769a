"""The agent's loopback HTTP service (contract v1, docs/agent.md).

:class:`AgentServer` answers a bank page's ``fetch()`` calls on ``127.0.0.1`` (or ``::1``): it
checks the ``Host`` (no DNS rebinding) and the ``Origin`` (only configured origins) of every
request, answers CORS preflights, parses JSON bodies strictly (≤ 64 KiB, no unknown or duplicate
fields), checks the pairing, and hands the request to a
:class:`~ebank_auth.agent.bridge.TokenBridge`.  Errors become ``{"error": code, "message": …}``
with the contract's status codes; never a traceback.  Requests are logged at INFO without bodies
or headers (no PIN, no pairing).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from ebank_auth import __version__
from ebank_auth.errors import (
    CardNotPresent,
    ConfigurationError,
    ConfirmationRejected,
    ConfirmationTimeout,
    EbankAuthError,
    EncodingError,
    InvalidInput,
    KeyAlreadyExists,
    PcscUnavailable,
    PinIncorrect,
    PinLocked,
    ReaderBusy,
    ReaderNotFound,
    TokenError,
    TokenNotGenuine,
)
from ebank_auth.usbkey import Algorithm, TrustConfig, resolve_trust

from .bridge import BUSY_TIMEOUT, NoLoginKey, TokenBridge
from .pairing import PAIRING_IDLE_SECONDS, Pairing, Pairings
from .protocol import (
    DEFAULT_AGENT_PORT,
    MAX_BODY_BYTES,
    PROTOCOL_VERSION,
    check_origin,
    login_message,
    parse_authenticate,
    parse_binding,
    parse_certificate,
    parse_enrol,
    parse_sign,
)

__all__ = ["AgentConfig", "AgentServer", "create_agent", "error_response"]

logger = logging.getLogger("ebank_auth.agent")

_LOOPBACK: Final = ("127.0.0.1", "::1")
_PREFLIGHT_MAX_AGE: Final = "600"


@dataclass(frozen=True)
class AgentConfig:
    """What the agent serves and for whom.

    ``origins``: the exact web origins (``https://bank.example``) whose pages may call the
    agent — at least one; ``host``: ``127.0.0.1`` or ``::1`` only; ``port``: 0 takes any free
    port; ``reader``: use only this PC/SC reader; ``busy_timeout``: how long a request waits for
    the token while another uses it before ``503 busy``."""

    origins: tuple[str, ...]
    port: int = DEFAULT_AGENT_PORT
    host: str = "127.0.0.1"
    reader: str | None = None
    busy_timeout: float = BUSY_TIMEOUT
    pairing_idle_seconds: float = PAIRING_IDLE_SECONDS

    def __post_init__(self) -> None:
        if isinstance(self.origins, str) or not self.origins:
            raise ConfigurationError(
                "name at least one origin allowed to use the agent (--origin "
                "https://bank.example): without one every request is refused"
            )
        object.__setattr__(self, "origins", tuple(check_origin(o) for o in self.origins))
        if self.host not in _LOOPBACK:
            raise ConfigurationError(
                f"the agent listens only on loopback (127.0.0.1 or ::1), not {self.host!r}: "
                "it holds the customer's token and must never be reachable from the network"
            )
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigurationError(f"agent port {self.port!r} is not a TCP port (0-65535)")


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _doc(code: str, exc: EbankAuthError) -> dict[str, Any]:
    return {"error": code, "message": exc.message}


def error_response(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The contract's status and JSON body for an error (one table, docs/agent.md)."""
    if isinstance(exc, _HttpError):
        return exc.status, {"error": exc.code, "message": exc.message}
    if isinstance(exc, PinIncorrect):
        return 401, {**_doc("pin_incorrect", exc), "retries_left": exc.remaining}
    table: Sequence[tuple[type[EbankAuthError], int, str]] = (
        (PinLocked, 423, "pin_locked"),
        (ConfirmationRejected, 409, "rejected"),
        (ConfirmationTimeout, 408, "timeout"),
        (NoLoginKey, 409, "no_login_key"),
        (KeyAlreadyExists, 409, "key_exists"),
        (ReaderBusy, 503, "busy"),
        (PcscUnavailable, 404, "no_token"),
        (ReaderNotFound, 404, "no_token"),
        (CardNotPresent, 404, "no_token"),
        (TokenNotGenuine, 502, "not_genuine"),
        (InvalidInput, 400, "bad_request"),
        (TokenError, 502, "token_error"),
    )
    for cls, status, code in table:
        if isinstance(exc, cls):
            return status, _doc(code, exc)
    return 500, {
        "error": "internal",
        "message": "the agent failed unexpectedly; its log says more (please report it)",
    }


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EncodingError(f"field {key!r} appears twice in the JSON body")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise EncodingError(f"{name} is not JSON")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_ALGORITHM_NAMES: Final = {Algorithm.SM2: "sm2", Algorithm.RSA2048: "rsa"}

_Handler = Callable[["_Request"], tuple[int, dict[str, Any]]]


@dataclass
class _Request:
    origin: str
    body: Any
    pairing: Pairing | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AgentServer:
    """The agent: an HTTP server on loopback bridging pages of ``config.origins`` to the token.

    ``trust`` is what tokens must chain to (see :func:`create_agent`).  :meth:`start` serves in
    a background thread, :meth:`serve_forever` in this one; :meth:`close` stops.
    """

    def __init__(self, config: AgentConfig, trust: TrustConfig) -> None:
        self.config = config
        self.bridge = TokenBridge(trust, config.reader, busy_timeout=config.busy_timeout)
        self.pairings = Pairings(idle_seconds=config.pairing_idle_seconds)
        self._routes: dict[str, tuple[str, bool, _Handler]] = {
            "/v1/status": ("GET", False, self._status),
            "/v1/pair": ("POST", False, self._pair),
            "/v1/tokens": ("GET", True, self._tokens),
            "/v1/enrol": ("POST", True, self._enrol),
            "/v1/certificate": ("POST", True, self._certificate),
            "/v1/sign": ("POST", True, self._sign),
            "/v1/authenticate": ("POST", True, self._authenticate),
        }
        self._httpd = _AgentHttpServer(self, config.host, config.port)
        self.port: int = int(self._httpd.server_address[1])
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.url = f"http://{host}:{self.port}"
        self.allowed_hosts = frozenset(
            {f"{host}:{self.port}", f"localhost:{self.port}"}
            | ({f"127.0.0.1:{self.port}"} if config.host == "127.0.0.1" else set())
        )
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> AgentServer:
        """Serve in a background thread (returns at once)."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ebank-auth-agent", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (from another thread or a signal handler's thread)."""
        self._httpd.shutdown()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> AgentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ dispatch
    def route(self, method: str, path: str) -> tuple[bool, _Handler]:
        entry = self._routes.get(path)
        if entry is None:
            raise _HttpError(
                404, "not_found", f"no such agent endpoint {path!r}: see docs/agent.md"
            )
        want, needs_pairing, handler = entry
        if method != want:
            raise _HttpError(405, "method_not_allowed", f"use {want} for {path}")
        return needs_pairing, handler

    def authorise(self, header: str | None, origin: str) -> Pairing:
        scheme, _, secret = (header or "").partition(" ")
        pairing = self.pairings.use(secret.strip(), origin) if scheme == "Bearer" else None
        if pairing is None:
            raise _HttpError(
                401,
                "not_paired",
                "this page is not paired with the agent (or the pairing expired): call "
                "POST /v1/pair and send Authorization: Bearer <pairing>",
            )
        return pairing

    # ------------------------------------------------------------------ endpoints
    def _status(self, req: _Request) -> tuple[int, dict[str, Any]]:
        return 200, {"agent": "ebank-auth", "version": __version__, "protocol": PROTOCOL_VERSION}

    def _pair(self, req: _Request) -> tuple[int, dict[str, Any]]:
        binding = parse_binding(req.body)
        secret = self.pairings.create(req.origin, binding)
        logger.info("paired a page of %r", req.origin)
        return 200, {"pairing": secret, "expires_in": int(self.config.pairing_idle_seconds)}

    def _tokens(self, req: _Request) -> tuple[int, dict[str, Any]]:
        try:
            found = self.bridge.list_tokens()
        except EbankAuthError as exc:
            _, doc = error_response(exc)
            return 200, {"tokens": [], **doc}
        return 200, {
            "tokens": [
                {"reader": t.reader, "serial": t.serial, "label": t.label, "genuine": t.genuine}
                for t in found
            ]
        }

    def _enrol(self, req: _Request) -> tuple[int, dict[str, Any]]:
        enrolled = self.bridge.enrol(parse_enrol(req.body))
        return 200, {
            "serial": enrolled.serial,
            "algorithm": _ALGORITHM_NAMES[enrolled.algorithm],
            "public_key": _b64(enrolled.public_key_der),
            "attestation": enrolled.attestation_pem,
        }

    def _certificate(self, req: _Request) -> tuple[int, dict[str, Any]]:
        serial = self.bridge.import_certificate(parse_certificate(req.body))
        return 200, {"serial": serial}

    def _sign(self, req: _Request) -> tuple[int, dict[str, Any]]:
        sign = parse_sign(req.body)  # a canonical transaction or 400: nothing reaches the token
        result = self.bridge.sign(sign)
        assert req.pairing is not None
        logger.info("transaction %r signed on token %s", sign.transaction.tx_id, result.serial)
        return 200, {
            "serial": result.serial,
            "signature": _b64(result.signature),
            "signed": _b64(result.signed_bytes),
            "binding": req.pairing.binding,
        }

    def _authenticate(self, req: _Request) -> tuple[int, dict[str, Any]]:
        auth = parse_authenticate(req.body)
        message = login_message(req.origin, auth.challenge)  # the requesting origin, always
        done = self.bridge.authenticate(auth, message)
        assert req.pairing is not None
        return 200, {
            "serial": done.serial,
            "signature": _b64(done.signature),
            "public_key": _b64(done.public_key_der),
            "binding": req.pairing.binding,
        }


class _AgentHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, agent: AgentServer, host: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.agent = agent
        super().__init__((host, port), _AgentHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away mid-answer (a closed tab) is no error worth a traceback on
        # stderr; anything else is logged once, without the request
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            logger.debug("client went away: %s", type(exc).__name__)
            return
        logger.error("request handling failed", exc_info=True)


class _AgentHandler(BaseHTTPRequestHandler):
    server: _AgentHttpServer
    server_version = "ebank-auth-agent"
    sys_version = ""
    timeout = 15  # seconds to send a request (no slow-loris holding a thread for ever)
    # a request http.server itself cannot parse (bad request line, huge header) is answered in
    # JSON too
    error_content_type = "application/json"
    error_message_format = (
        '{"error": "bad_request", "message": "malformed HTTP request: send HTTP/1.1 JSON requests"}'
    )

    def log_message(self, format: str, *args: Any) -> None:  # requests are logged in _handle
        logger.debug("http: " + format, *args)

    def _respond(
        self, status: int, doc: Mapping[str, Any] | None, origin: str | None, **extra: str
    ) -> None:
        body = b"" if doc is None else json.dumps(doc).encode("utf-8")
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Vary", "Origin")
        if origin is not None:
            self.send_header("Access-Control-Allow-Origin", origin)
        for name, value in extra.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        raw_length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise _HttpError(400, "bad_request", "send the body with a Content-Length")
        try:
            length = int(raw_length) if raw_length is not None else 0
        except ValueError:
            raise _HttpError(400, "bad_request", "Content-Length is not a number") from None
        if length < 0:
            raise _HttpError(400, "bad_request", "Content-Length is negative")
        if length > MAX_BODY_BYTES:
            raise _HttpError(413, "bad_request", f"the body is larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length else b""

    def _json(self, raw: bytes) -> Any:
        ctype = self.headers.get("Content-Type", "")
        media, _, params = ctype.partition(";")
        charset = params.strip().lower()
        if media.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
            raise _HttpError(400, "bad_request", "send the body as Content-Type: application/json")
        try:
            return json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constants,
            )
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _HttpError(400, "bad_request", "the body is not valid UTF-8 JSON") from None

    def _handle(self, method: str) -> None:
        agent = self.server.agent
        started = time.monotonic()
        origin = self.headers.get("Origin")
        allowed = origin if origin in agent.config.origins else None
        path = self.path
        status = 500
        try:
            if self.headers.get("Host", "") not in agent.allowed_hosts:
                raise _HttpError(
                    421,
                    "host_refused",
                    "call the agent as http://127.0.0.1:<port> or http://localhost:<port>",
                )
            if allowed is None:
                raise _HttpError(
                    403,
                    "origin_refused",
                    "this web site is not allowed to use the agent: the agent's --origin list "
                    "names the bank sites that may",
                )
            if method == "OPTIONS":
                status = self._preflight(allowed)
                return
            needs_pairing, handler = agent.route(method, path)
            raw = self._read_body()
            if method == "GET":
                if raw:
                    raise _HttpError(400, "bad_request", "a GET request has no body")
                body: Any = None
            else:
                body = self._json(raw)
            req = _Request(allowed, body)
            if needs_pairing:
                req.pairing = agent.authorise(self.headers.get("Authorization"), allowed)
            status, doc = handler(req)
            del req, body  # the PIN is in there: drop every reference as soon as possible
        except Exception as exc:
            if not isinstance(exc, (_HttpError, EbankAuthError)):
                logger.error("internal error on %s %r", method, path, exc_info=True)
            status, doc = error_response(exc)
        finally:
            logger.info(
                "%s %r %d origin=%r %.0f ms",
                method,
                path,
                status,
                origin,
                (time.monotonic() - started) * 1000,
            )
        self._respond(status, doc, allowed)

    def _preflight(self, origin: str) -> int:
        extra = {
            "Access_Control_Allow_Methods": "GET, POST",
            "Access_Control_Allow_Headers": "Content-Type, Authorization",
            "Access_Control_Max_Age": _PREFLIGHT_MAX_AGE,
        }
        if self.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            extra["Access_Control_Allow_Private_Network"] = "true"
        self._respond(204, None, origin, **extra)
        return 204

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")


def create_agent(
    config: AgentConfig,
    *,
    roots: Sequence[Path] = (),
    allowlist: Path | None = None,
    software_token_state: Path | None = None,
) -> AgentServer:
    """An :class:`AgentServer` whose token trust comes from :func:`ebank_auth.usbkey.resolve_trust`
    (roots, ``EBANK_AUTH_TOKEN_ROOTS``, or — asked for explicitly — the software token's test
    manufacturer in ``software_token_state``).  Resolved once, here: a misconfigured trust fails
    at start, not at the customer's first signature."""
    trust = resolve_trust(roots, allowlist, software_token_state=software_token_state)
    return AgentServer(config, trust)
