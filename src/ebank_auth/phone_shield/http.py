"""The phone's HTTP JSON contract, framework-neutral: ``PhoneShieldApi.handle(method, path, …)``.

A bank app routes ``/phone-shield/v1/…`` to :meth:`PhoneShieldApi.handle` (Flask, WSGI, the
standard library's ``http.server`` — :func:`serve` is a small one for tests and demos).  Every
answer is JSON: ``{"ok": true, …}``, or ``{"ok": false, "error": {"type", "message", "reason"}}``
with 400 (malformed), 403 (refused), 404 (unknown enrolment or session), 409 (replayed request,
session already used), 410 (device revoked), 423 (device locked) or 503 (a service is down).

=========================================================  ==========================================
request                                                    answer
=========================================================  ==========================================
``GET  /enrolments/<eid>?s=<link secret>``                 reference_code, subject,
                                                           attestation_challenge, enrolment_certificate
``POST /enrolments/<eid>/attest``  {link_secret,           device_id, keygen_response
authorisation_code, attestation_chain: [b64…],
keygen_request}
``POST /enrolments/<eid>/keygen``  signed {keygen_confirm}  public_key (hex)
``POST /enrolments/<eid>/pop/begin``  signed {csr_info}     sign_challenge
``POST /enrolments/<eid>/pop/complete``  signed             sign_response
{sign_request}
``POST /enrolments/<eid>/finish``  signed {envelope}        device_id, certificate, chain
``POST /devices/<id>/pending``  signed {}                   session (null or {session_id, challenge,
                                                           transaction, expires_at})
``POST /devices/<id>/status``  signed {}                    the device's status
``POST /devices/<id>/revoke``  signed {}                    state
``POST /sessions/<sid>/sign``  signed {sign_request}        sign_response
``POST /sessions/<sid>/result``  signed {signature} or      status
{outcome: "rejected" | "failed"}
``POST /sessions/<sid>/decrypt``  signed {decrypt_request}  decrypt_response
=========================================================  ==========================================

Paths are under :data:`~ebank_auth.phone_shield.protocol.API_PREFIX`; binary values are
base64url; "signed" bodies are :class:`~ebank_auth.phone_shield.protocol.SignedRequest`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from ebank_auth.errors import (
    DeviceLocked,
    DeviceRequestRejected,
    DeviceRevoked,
    EbankAuthError,
    EnrolmentRefused,
    InvalidInput,
    ServiceUnavailable,
    SessionAlreadyUsed,
    SigningRefused,
)
from ebank_auth.phone_shield.protocol import API_PREFIX, SignedRequest, b64d, b64e
from ebank_auth.phone_shield.server import EnrolmentReason, PhoneShieldServer

__all__ = ["PhoneShieldApi", "serve"]

_log = logging.getLogger(__name__)
_MAX_BODY: Final = 256 * 1024


def _status_for(exc: EbankAuthError) -> int:
    if isinstance(exc, ServiceUnavailable):
        return 503
    if isinstance(exc, DeviceLocked):
        return 423
    if isinstance(exc, DeviceRevoked):
        return 410
    if isinstance(exc, (DeviceRequestRejected, SessionAlreadyUsed)):
        return 409
    if isinstance(exc, EnrolmentRefused) and exc.reason is EnrolmentReason.UNKNOWN:
        return 404
    if isinstance(exc, SigningRefused) and exc.status is None:
        return 404
    if isinstance(exc, InvalidInput):
        return 400
    return 403


def error_body(exc: EbankAuthError) -> dict[str, Any]:
    reason = getattr(exc, "reason", None) or getattr(exc, "status", None)
    return {
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "message": exc.message,
            "reason": getattr(reason, "value", reason),
        },
    }


class PhoneShieldApi:
    """Routes the phone's requests to a :class:`PhoneShieldServer`."""

    def __init__(self, server: PhoneShieldServer) -> None:
        self.server = server

    def handle(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
        """One request: (HTTP status, JSON document).  Never raises for a bad request."""
        try:
            return 200, {"ok": True, **self._dispatch(method.upper(), path, body)}
        except EbankAuthError as exc:
            _log.info("phone-shield request refused: %s", type(exc).__name__)
            return _status_for(exc), error_body(exc)

    def _dispatch(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        parts = urlsplit(path)
        if not parts.path.startswith(API_PREFIX + "/"):
            raise SigningRefused("unknown phone-shield endpoint")
        segs = parts.path[len(API_PREFIX) + 1 :].split("/")
        srv = self.server
        if method == "GET" and len(segs) == 2 and segs[0] == "enrolments":
            q = parse_qs(parts.query)
            secret = b64d((q.get("s") or [""])[0], "link secret")
            return {"enrolment": srv.enrolment_info(segs[1], secret).to_json()}
        if method != "POST":
            raise SigningRefused("unknown phone-shield endpoint")
        doc = _json(body)
        if segs[0] == "enrolments" and len(segs) >= 3:
            eid, step = segs[1], "/".join(segs[2:])
            if step == "attest":
                chain = doc.get("attestation_chain")
                if not isinstance(chain, list):
                    raise _bad("attestation_chain must be a list of base64url certificates")
                code = doc.get("authorisation_code")
                if not isinstance(code, str):
                    raise _bad("authorisation_code must be text")
                device_id, response = srv.enrol_attest(
                    eid,
                    b64d(doc.get("link_secret"), "link_secret"),
                    code,
                    [b64d(c, "certificate") for c in chain],
                    b64d(doc.get("keygen_request"), "keygen_request"),
                )
                return {"device_id": device_id, "keygen_response": b64e(response)}
            req = SignedRequest.from_json(doc)
            if step == "keygen":
                return {"public_key": srv.enrol_keygen(eid, req).hex()}
            if step == "pop/begin":
                return {"sign_challenge": b64e(srv.enrol_pop_begin(eid, req))}
            if step == "pop/complete":
                return {"sign_response": b64e(srv.enrol_pop_complete(eid, req))}
            if step == "finish":
                dev = srv.enrol_finish(eid, req)
                return {
                    "device_id": dev.device_id,
                    "certificate": b64e(dev.certificate.to_der()),
                    "chain": [b64e(c.to_der()) for c in dev.chain],
                }
        if segs[0] == "devices" and len(segs) == 3:
            device_id, step = segs[1], segs[2]
            req = SignedRequest.from_json(doc)
            if step == "pending":
                return {"session": srv.pending(device_id, req)}
            if step == "status":
                srv.device_request(device_id, "status", req)
                return {"status": srv.status(device_id).to_json()}
            if step == "revoke":
                srv.device_request(device_id, "revoke", req)
                srv.revoke(device_id, reason="revoked from the phone")
                return {"state": "revoked"}
        if segs[0] == "sessions" and len(segs) == 3:
            sid, step = segs[1], segs[2]
            req = SignedRequest.from_json(doc)
            if step == "sign":
                return {"sign_response": b64e(srv.sign_step(sid, req))}
            if step == "result":
                return {"status": srv.sign_result(sid, req).value}
            if step == "decrypt":
                return {"decrypt_response": b64e(srv.decrypt_step(sid, req))}
        raise SigningRefused("unknown phone-shield endpoint")


def _bad(message: str) -> InvalidInput:
    from ebank_auth.errors import EncodingError

    return EncodingError(message)


def _json(body: bytes) -> Mapping[str, Any]:
    if len(body) > _MAX_BODY:
        raise _bad("request body too large")
    try:
        doc = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad("the request body is not JSON") from None
    if not isinstance(doc, dict):
        raise _bad("the request body must be a JSON object")
    return doc


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ebank-auth-phone-shield"
    sys_version = ""
    timeout = 15

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("phone-shield http: " + format, *args)

    def _answer(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(*self.server.api.handle("GET", self.path))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._answer(
                400,
                {
                    "ok": False,
                    "error": {"type": "EncodingError", "message": "bad length", "reason": None},
                },
            )
            return
        self._answer(*self.server.api.handle("POST", self.path, self.rfile.read(length)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: PhoneShieldApi, host: str, port: int) -> None:
        self.api = api
        super().__init__((host, port), _Handler)


class serve:
    """Serve ``api`` on ``host:port`` in a thread (tests and demos): ``with serve(api) as url``."""

    def __init__(self, api: PhoneShieldApi, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _Server(api, host, port)
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="phone-shield-http", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> str:
        return self.url

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __exit__(self, *exc: object) -> None:
        self.close()
