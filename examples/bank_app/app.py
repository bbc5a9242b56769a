"""The web layer of the reference bank app: Flask routes, server-side sessions,
security headers.  It talks to ebank_auth only through :mod:`wiring`."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

# run.py (and the tests) put this directory first on sys.path
import stepups
import wiring
from flask import (
    Flask,
    Response,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SessionInterface, SessionMixin
from flask_wtf.csrf import CSRFError, CSRFProtect
from i18n import TEXTS, translate
from werkzeug.datastructures import CallbackDict
from werkzeug.exceptions import InternalServerError
from wiring import BankServices, EbankAuthError, Factor, Operation, Outcome, errors

log = logging.getLogger("bank_app")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' {agent}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: where the page finds the local signing agent (``ebank-auth agent serve``)
DEFAULT_AGENT_URL = "http://127.0.0.1:8765"
_AGENT_URL = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}")
_B64 = re.compile(r"[A-Za-z0-9+/=]{1,8192}")
_SERIAL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: the page for a store outage met before any route ran (the session could not be loaded)
OUTAGE_PAGE = (
    "<!doctype html><html lang=zh><meta charset=utf-8><title>503</title>"
    "<p>服务暂时不可用，请稍后再试。</p>"
    "<p>The service is temporarily unavailable: please try again in a minute.</p></html>"
)
#: the outage page's headers: not cached, not framed, nothing loaded
OUTAGE_HEADERS = {
    "Retry-After": "30",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
#: the same generic text for every failed login step: never which factor was wrong
GENERIC_LOGIN_ERROR = "login_failed"
_SID = re.compile(r"[0-9a-f]{64}")
_ENROLMENT_ID = re.compile(r"[0-9a-f]{32}")
PHONE_API = wiring.PHONE_API_PREFIX
_DEVICE = re.compile(r"[0-9a-f]{32}")
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_TX_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CIPHERTEXT_HEX = re.compile(r"(?:[0-9a-f]{2}){1,512}")
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,1400}")
#: the largest WebAuthn credential JSON a form may carry (attestation certificates included)
MAX_CREDENTIAL_JSON = 32 * 1024
#: how long the SMS step-up before registering a passkey stays valid (seconds)
PASSKEY_STEPUP_SECONDS = 300.0
#: the form fields the browser soft keyboard (static/js/softkeyboard.js) fills
SK_FIELDS = ("sk_session", "sk_keystrokes", "sk_commitment", "sk_switched")
MAX_KEYSTROKES = 128


def vendored_scripts(static: Path) -> list[tuple[str, str]]:
    """(file under static/vendor, SRI value) of each vendored browser script, as recorded
    in ``static/vendor/VENDORED.md`` (the page loads each with ``integrity=``)."""
    text = (static / "vendor" / "VENDORED.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|[^|]+\|[^|]+\|\s*(\S+\.js)\s*\|\s*(sha384-\S+)\s*\|", text, re.M)
    if not rows:
        raise errors.ConfigurationError(
            "static/vendor/VENDORED.md lists no vendored script: restore it from the repository"
        )
    return [(str(f), str(sri)) for f, sri in rows]


def keystrokes(form: Any) -> list[str]:
    """``sk_keystrokes`` exactly as the browser client sends it: one field holding a JSON
    list of lower-case hex DER ciphertexts.  Anything else (a repeated field, comma-separated
    hex, other JSON, too many entries) is refused with :class:`SoftKeyboardError`."""
    values = form.getlist("sk_keystrokes")
    refused = errors.SoftKeyboardError(
        "the keystrokes must be one JSON list of hex ciphertexts: type the password again"
    )
    if len(values) != 1 or len(values[0]) > MAX_KEYSTROKES * 1100:
        raise refused
    try:
        parsed = json.loads(values[0])
    except ValueError:
        raise refused from None
    if (
        not isinstance(parsed, list)
        or len(parsed) > MAX_KEYSTROKES
        or not all(isinstance(h, str) and _CIPHERTEXT_HEX.fullmatch(h) for h in parsed)
    ):
        raise refused
    return parsed


# ---------------------------------------------------------------------- sessions
class StoreSession(CallbackDict[str, Any], SessionMixin):
    """A session whose data lives in the store; the cookie holds only a random id."""

    def __init__(self, data: dict[str, Any] | None, sid: str, raw: bytes | None = None) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(data or {}, on_update)
        self.sid = sid
        self.raw = raw  # the stored record this request started from (None: a new session)
        self.modified = False
        self.rotate = False


class StoreSessionInterface(SessionInterface):
    """Server-side sessions: ``bank:sess:<id>`` holding the data and the last-activity
    time, checked on every request (the server decides, not the cookie)."""

    def __init__(self, services: BankServices, idle_seconds: float) -> None:
        self.services = services
        self.idle = float(idle_seconds)

    def _key(self, sid: str) -> str:
        return f"bank:sess:{sid}"

    def open_session(self, app: Flask, request: Any) -> StoreSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if _SID.fullmatch(sid):
            raw = self.services.store.get(self._key(sid))
            if raw is not None:
                rec = json.loads(raw)
                if self.services.clock() - float(rec["t"]) <= self.idle:
                    return StoreSession(rec["data"], sid, raw)
                self.services.store.delete(self._key(sid))
                data = {"lang": rec["data"].get("lang", "zh")}
                if "user" in rec["data"]:
                    data["idle_notice"] = True  # shown once on the login page
                return StoreSession(data, secrets.token_hex(32))
        return StoreSession(None, secrets.token_hex(32))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Write the session back without ever resurrecting one that ended meanwhile.

        The write is a compare-and-set against the record this request started from; if
        that record is gone (logout, idle expiry, rotation by a parallel login) the
        session stays gone.  If a parallel request updated it, this request's changes are
        written over it (last writer wins) but only while it still exists."""
        if not isinstance(session, StoreSession):
            return  # the session could not be opened (store down): nothing to write back
        store = self.services.store
        name = self.get_cookie_name(app)
        if session.rotate:  # login: the old id dies, the data moves to a fresh id
            store.delete(self._key(session.sid))
            session.sid = secrets.token_hex(32)
            session.raw = None
        key = self._key(session.sid)
        if not session:
            store.delete(key)
            response.delete_cookie(name, path="/")
            return
        data = json.dumps({"t": self.services.clock(), "data": dict(session)}).encode()
        # the record outlives the idle limit a little, so the next request can say
        # "logged out after inactivity"; the limit itself is the "t" check in open_session
        ttl = self.idle + 600
        if session.raw is None:
            written = store.put_if_absent(key, data, ttl=ttl)
        else:
            expected: bytes | None = session.raw
            written = False
            for _ in range(5):
                if store.compare_and_set(key, expected, data, ttl=ttl):
                    written = True
                    break
                expected = store.get(key)
                if expected is None or not session.modified:
                    break  # ended meanwhile: stay ended; or nothing of ours to keep
        if not written and (session.raw is None or store.get(key) is None):
            response.delete_cookie(name, path="/")
            return
        response.set_cookie(
            name,
            session.sid,
            httponly=True,
            samesite="Strict",
            secure=bool(app.config["SESSION_COOKIE_SECURE"]),
            path="/",
        )


# ---------------------------------------------------------------------- the app
def create_app(
    state_dir: str | Path,
    *,
    demo: bool = True,
    idle_seconds: float = 300.0,
    argon2_memory_kib: int = 64 * 1024,
    clock: Callable[[], float] | None = None,
    secure_cookies: bool = False,
    agent_url: str = DEFAULT_AGENT_URL,
    token_roots: tuple[Path, ...] = (),
    software_token_state: Path | None = None,
    staff_keys: tuple[Path, ...] = (),
    store_url: str | None = None,
    passkey_rp_id: str | None = None,
    passkey_origins: tuple[str, ...] = (),
    passkey_usernameless: bool = False,
    phone_attestation_roots: tuple[Path, ...] = (),
    software_phone_state: Path | None = None,
    phone_url: str | None = None,
    phone_daily_limits: dict[str, str] | None = None,
) -> Flask:
    if not _AGENT_URL.fullmatch(agent_url):
        raise errors.ConfigurationError(
            "the signing agent listens on loopback only: give --agent-url http://127.0.0.1:PORT"
        )
    services = BankServices(
        state_dir,
        argon2_memory_kib=argon2_memory_kib,
        clock=clock,
        token_roots=token_roots,
        software_token_state=software_token_state,
        staff_keys=staff_keys,
        store_url=store_url,
        passkey_rp_id=passkey_rp_id,
        passkey_origins=passkey_origins,
        passkey_usernameless=passkey_usernameless,
        phone_attestation_roots=phone_attestation_roots,
        software_phone_state=software_phone_state,
        phone_url=phone_url,
        phone_daily_limits=phone_daily_limits,
    )
    csp = CSP.format(agent=agent_url)
    app = Flask(__name__)
    app.config.update(
        # CSRF token signing only (sessions are server-side); kept in the state directory so
        # every worker process of one deployment accepts the tokens the others issued
        SECRET_KEY=services.csrf_key,
        SESSION_COOKIE_NAME="bank_session",
        SESSION_COOKIE_SECURE=secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (idle-limited) session
        DEMO=demo,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.session_interface = StoreSessionInterface(services, idle_seconds)
    vendor = vendored_scripts(Path(app.static_folder or ""))
    app.extensions["bank"] = services

    @app.before_request
    def _before() -> Any:
        lang = request.args.get("lang")
        if lang in TEXTS:
            session["lang"] = lang
        g.lang = session.get("lang", "zh")
        device = request.cookies.get("bank_device", "")
        g.new_device_cookie = None
        if not _DEVICE.fullmatch(device):
            device = secrets.token_hex(16)
            g.new_device_cookie = device
        g.device = device
        if request.path.startswith(PHONE_API + "/"):
            g.new_device_cookie = None  # the phone's API sets no browser cookie
        return None

    csrf = CSRFProtect(app)  # after _before: its check runs with the language and device known

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = csp
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        if g.get("new_device_cookie"):
            resp.set_cookie(
                "bank_device",
                g.new_device_cookie,
                max_age=365 * 86400,
                httponly=True,
                samesite="Strict",
                secure=secure_cookies,
            )
        return resp

    @app.context_processor
    def _ctx() -> dict[str, Any]:
        return {
            "t": lambda key, **kw: translate(g.get("lang", "zh"), key, **kw),
            "lang": g.get("lang", "zh"),
            "demo": app.config["DEMO"],
            "logged_in": "user" in session,
            "idle_logout": g.get("idle_logout", False),
            "mask_account": wiring.mask_account,
            "softkeyboard_vendor": vendor,
            "agent_url": agent_url,
            "staff": session.get("staff"),
            "usernameless": services.usernameless_allowed() and passkey_origin() is not None,
        }

    @app.errorhandler(CSRFError)
    def _csrf(_: CSRFError) -> tuple[str, int]:
        g.lang = g.get("lang") or session.get("lang", "zh")
        return render_template("error.html", message=translate(g.lang, "csrf_failed")), 400

    @app.errorhandler(InternalServerError)
    def _outage(exc: InternalServerError) -> Any:
        # Flask opens the server-side session before any route, outside the routes' handlers:
        # a store that cannot answer there is a 503 with Retry-After (fail closed), not a 500.
        # No template: the session the templates read is what could not be loaded.
        if isinstance(exc.original_exception, errors.ServiceUnavailable):
            return Response(OUTAGE_PAGE, status=503, headers=OUTAGE_HEADERS, mimetype="text/html")
        return exc

    @app.errorhandler(EbankAuthError)
    def _library_error(exc: EbankAuthError) -> tuple[str, int]:
        # a typed error the route did not expect (store down, bad input): its message
        # says what to do; never a stack trace, and a store outage is a refusal
        g.lang = g.get("lang") or "zh"
        status = 503 if isinstance(exc, errors.ServiceUnavailable) else 400
        log.warning("request refused: %s", type(exc).__name__)
        return render_template("error.html", message=str(exc)), status

    def ip() -> str:
        return request.remote_addr or ""

    def limited(kind: str, who: str, limit: int) -> bool:
        return not services.rate_ok(kind, who, limit)

    def too_many() -> tuple[str, int]:
        return render_template("error.html", message=translate(g.lang, "rate_limited")), 429

    def login_failed(template: str = "login.html", **kw: Any) -> tuple[str, int]:
        return render_template(template, error=translate(g.lang, GENERIC_LOGIN_ERROR), **kw), 401

    def passkey_origin() -> str | None:
        """This request's WebAuthn origin, or None where passkeys cannot be offered."""
        return services.passkey_origin(
            request.scheme, request.host, str(request.environ.get("SERVER_PORT", ""))
        )

    def posted_credential() -> dict[str, Any] | None:
        """The ``credential`` field passkey.js fills: one JSON object, bounded in size."""
        values = request.form.getlist("credential")
        if len(values) != 1 or not 0 < len(values[0]) <= MAX_CREDENTIAL_JSON:
            return None
        try:
            parsed = json.loads(values[0])
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def current_user() -> str:
        user = session.get("user")
        if not isinstance(user, str):
            abort(redirect(url_for("login")))
        return user

    # ------------------------------------------------------------------ login
    @app.get("/")
    def index() -> Any:
        return redirect(url_for("accounts" if "user" in session else "login"))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            g.idle_logout = session.pop("idle_notice", False)
            return render_template("login.html")
        if limited("login-ip", ip(), 60):
            return too_many()
        username = request.form.get("username", "").strip()
        if not _USERNAME.fullmatch(username):
            return login_failed()
        session.clear()
        session.update(lang=g.lang, pending=username, factors=[])
        return redirect(url_for("login_password"))

    def phrase_for(username: str) -> str:
        cust = services.customer(username)
        return cust.phrase if cust else services.decoy_phrase(username)

    @app.get("/login/password")
    def login_password() -> Any:
        username = session.get("pending")
        if not isinstance(username, str):
            return redirect(url_for("login"))
        return render_template(
            "password.html",
            username=username,
            phrase=phrase_for(username),
        )

    def submitted_password() -> tuple[str | bytearray, Factor]:
        """The password of a login or transfer form: the soft keyboard's ciphertexts when
        the form carries them, else the plain ``password`` field (a client without the
        keyboard script; the policy sees a plain :class:`Factor.PASSWORD`)."""
        form = request.form
        if any(name in form for name in SK_FIELDS):
            issued = session.pop("sk", None)  # a keyboard session is submitted once
            sk_session = form.get("sk_session", "")
            if not isinstance(issued, str) or sk_session != issued:
                raise errors.SoftKeyboardError(
                    "this keyboard was not opened for this page: reload it and type again"
                )
            return services.keyboard_password(
                sk_session, keystrokes(form), form.get("sk_commitment", "")
            )
        return form.get("password", ""), Factor.PASSWORD

    @app.post("/login/password")
    def login_password_post() -> Any:
        username = session.get("pending")
        if not isinstance(username, str):
            return redirect(url_for("login"))
        if limited("login-ip", ip(), 60) or limited("login-user", username, 20):
            return too_many()
        page = {"template": "password.html", "username": username, "phrase": phrase_for(username)}
        try:
            password, factor = submitted_password()
        except errors.SoftKeyboardError:
            return login_failed(**page)
        ctx = services.context(username, Operation.LOGIN, ip=ip(), device_id=g.device, presented=[])
        try:
            result = services.lockout.password_login(
                services.passwords, username, password, context=ctx
            )
        except errors.AccountLocked as exc:
            return render_template("password.html", error=str(exc), **_page(page)), 403
        finally:
            if isinstance(password, bytearray):
                password[:] = b"\x00" * len(password)
        if not result.success:
            return login_failed(**page)
        first = session.get("factors", []) if session.get("stage") == "passkey-first" else []
        session["factors"] = [*first, factor.value]
        session["stage"] = "password"
        if result.change_required:
            session["stage"] = "change"
            return redirect(url_for("login_change"))
        return step_up(username)

    def step_up(username: str) -> Any:
        """Ask the policy what else this login needs; send an SMS code if that is it."""
        factors = [Factor(f) for f in session.get("factors", [])]
        ctx = services.context(
            username, Operation.LOGIN, ip=ip(), device_id=g.device, presented=factors
        )
        decision = services.decide(ctx)
        if decision.outcome is Outcome.ALLOW:
            return complete_login(username, decision.obligations)
        if (
            decision.outcome is Outcome.STEP_UP
            and services.passkey_meets(decision)
            and services.has_passkeys(username)
            and passkey_origin() is not None
        ):
            # the policy takes a passkey for what is missing: offer it (or an SMS code)
            session["stage"] = "second"
            session["passkey_uv"] = services.passkey_level(decision).value
            return redirect(url_for("login_second"))
        choices = services.login_choices(username, decision)
        if decision.outcome is Outcome.STEP_UP and choices and choices != [Factor.SMS_CODE]:
            # TOTP or the USB Key's login signature also meet it: the customer chooses
            session["stage"] = "choose"
            session["choices"] = [f.value for f in choices]
            return redirect(url_for("stepups.login_choose"))
        if decision.outcome is Outcome.STEP_UP and services.needs_only_sms(decision):
            return send_login_code(username)
        session.clear()
        reasons = "; ".join(decision.reasons) or translate(g.lang, "login_needs_usbkey")
        return render_template("error.html", message=reasons), 403

    def send_login_code(username: str) -> Any:
        try:
            issued = services.codes.issue(username, "login", lang=g.lang)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        session["stage"] = "code"
        session["phone"] = issued.phone_masked
        return redirect(url_for("login_code"))

    @app.get("/login/second")
    def login_second() -> Any:
        username = session.get("pending")
        if not isinstance(username, str) or session.get("stage") != "second":
            return redirect(url_for("login"))
        uv = session.get("passkey_uv") == wiring.UserVerification.REQUIRED.value
        return render_template("second.html", uv=uv)

    @app.post("/login/sms")
    def login_sms() -> Any:
        """The customer chose an SMS code instead of the passkey offered."""
        username = session.get("pending")
        if not isinstance(username, str) or session.get("stage") != "second":
            return redirect(url_for("login"))
        if limited("code-user", username, 20):
            return too_many()
        return send_login_code(username)

    @app.post("/login/passkey/begin")
    def login_passkey_begin() -> Any:
        """Sign-in options for passkey.js: the pending customer's passkeys after the password
        (the second factor), or any discoverable passkey (usernameless, when allowed)."""
        origin = passkey_origin()
        if origin is None:
            return jsonify(error=translate(g.lang, "passkey_unavailable")), 400
        if limited("passkey-ip", ip(), 60):
            return jsonify(error=translate(g.lang, "rate_limited")), 429
        username = session.get("pending")
        if isinstance(username, str) and session.get("stage") == "second":
            if limited("passkey-user", username, 20):
                return jsonify(error=translate(g.lang, "rate_limited")), 429
            level = wiring.UserVerification(
                session.get("passkey_uv", wiring.UserVerification.PREFERRED.value)
            )
            handle, options = services.passkey_login_begin(origin, username, level)
        elif services.usernameless_allowed() and "user" not in session:
            # a new login attempt, but the session (and the page's CSRF token in it) stays
            for key in ("pending", "factors", "phone", "passkey_uv"):
                session.pop(key, None)
            session["stage"] = "usernameless"
            handle, options = services.passkey_login_begin(
                origin, None, wiring.UserVerification.PREFERRED
            )
        else:
            return jsonify(error=translate(g.lang, GENERIC_LOGIN_ERROR)), 400
        session["passkey_login"] = handle
        return jsonify(options=options)

    @app.post("/login/passkey")
    def login_passkey() -> Any:
        """The browser's assertion.  A failure is never a password failure (the lockout is
        not touched); a locked customer is refused by the library after the passkey verified."""
        handle = session.pop("passkey_login", None)
        stage = session.get("stage")
        username = session.get("pending")
        origin = passkey_origin()
        credential = posted_credential()
        second = isinstance(username, str) and stage == "second"
        if not isinstance(handle, str) or origin is None or stage not in ("second", "usernameless"):
            return redirect(url_for("login"))
        page: dict[str, Any] = (
            {"template": "second.html", "uv": session.get("passkey_uv") == "required"}
            if second
            else {"template": "login.html"}
        )
        try:
            if credential is None:
                raise errors.PasskeyRejected("the passkey response is malformed")
            user, factor = services.passkey_login_complete(origin, handle, credential)
        except errors.AccountLocked as exc:
            session.clear()
            return render_template("error.html", message=str(exc)), 403
        except errors.PasskeyCloneSuspected as exc:
            # only someone holding the passkey's key gets this far (the signature verified)
            return render_template(page.pop("template"), error=str(exc), **page), 401
        except EbankAuthError:
            return login_failed(**page)
        if second:
            if user != username:
                return login_failed(**page)
            session["factors"] = [*session.get("factors", []), factor.value]
            return step_up(user)
        # usernameless: the passkey named the customer; the password (and phrase) follow
        session.clear()
        session.update(lang=g.lang, pending=user, factors=[factor.value], stage="passkey-first")
        return redirect(url_for("login_password"))

    def complete_login(username: str, obligations: frozenset[str]) -> Any:
        factors = [Factor(f) for f in session.get("factors", [])]
        if "bind_device" in obligations:
            services.bind_device(username, g.device, ip=ip(), presented=factors)
        services.devices.record_login(username, g.device, client_type="browser", ip=ip())
        lang = g.lang
        session.clear()
        session.rotate = True  # type: ignore[attr-defined]
        session.update(user=username, lang=lang, login_factors=[f.value for f in factors])
        services.audit.record("login", user=username, ip=ip(), device=g.device, outcome="ok")
        return redirect(url_for("accounts"))

    @app.route("/login/change", methods=["GET", "POST"])
    def login_change() -> Any:
        username = session.get("pending")
        if not isinstance(username, str) or session.get("stage") != "change":
            return redirect(url_for("login"))
        if request.method == "GET":
            return render_template("change.html")
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm_password", ""):
            return render_template("change.html", error=translate(g.lang, "mismatch")), 400
        try:
            services.change_password(username, request.form.get("old_password", ""), new)
        except errors.PasswordPolicyError as exc:
            return render_template("change.html", error=str(exc)), 400
        except errors.AccountLocked as exc:
            session.clear()
            return render_template("error.html", message=str(exc)), 403
        except EbankAuthError:
            return login_failed("change.html")
        session["stage"] = "password-changed"
        return step_up(username)

    @app.route("/login/code", methods=["GET", "POST"])
    def login_code() -> Any:
        username = session.get("pending")
        if not isinstance(username, str) or session.get("stage") != "code":
            return redirect(url_for("login"))
        if request.method == "GET":
            return render_template("code.html", phone=session.get("phone", ""))
        if limited("code-user", username, 20):
            return too_many()
        try:
            services.codes.verify(username, "login", request.form.get("code", "").strip())
        except errors.OtpError:
            return login_failed("code.html", phone=session.get("phone", ""))
        session["factors"] = [*session.get("factors", []), Factor.SMS_CODE.value]
        return step_up(username)

    @app.post("/logout")
    def logout() -> Any:
        if "user" in session:
            services.audit.record("logout", user=session["user"], ip=ip(), outcome="ok")
        session.clear()
        return redirect(url_for("login"))

    @app.get("/softkeyboard/session")
    def softkeyboard_session() -> Any:
        if limited("sk-ip", ip(), 60):
            return jsonify(error=translate(g.lang, "rate_limited")), 429
        view = services.keyboard_session()
        session["sk"] = view["session_id"]  # the only keyboard this page may submit or switch
        return jsonify(view)

    @app.post("/softkeyboard/switch")
    def softkeyboard_switch() -> Any:
        """The customer chose the system keyboard (SK-1 b).  CSRF-checked (``X-CSRF-Token``
        header); only the keyboard session issued to this browser session can be switched.
        The switch is never taken from the form: the submitted session itself is a SYSTEM
        session, and ``decoded.system_keyboard`` tells the policy."""
        if limited("sk-ip", ip(), 60):
            return jsonify(error=translate(g.lang, "rate_limited")), 429
        body = request.get_json(silent=True)
        sk_session = body.get("session_id") if isinstance(body, dict) else None
        issued = session.get("sk")
        if not isinstance(sk_session, str) or not isinstance(issued, str):
            return jsonify(error=translate(g.lang, "sk_switch_refused")), 400
        if not secrets.compare_digest(sk_session, issued):
            return jsonify(error=translate(g.lang, "sk_switch_refused")), 400
        try:
            view = services.keyboard_switch(sk_session)
        except errors.SoftKeyboardError:
            session.pop("sk", None)
            return jsonify(error=translate(g.lang, "sk_switch_refused")), 400
        session["sk"] = view["session_id"]
        return jsonify(view)

    # ------------------------------------------------------------------ banking
    @app.get("/accounts")
    def accounts() -> Any:
        user = current_user()
        cust = services.customer(user)
        accts = [services.account(n) for n in (cust.accounts if cust else ())]
        return render_template("accounts.html", customer=cust, accounts=accts)

    @app.route("/transfer", methods=["GET", "POST"])
    def transfer() -> Any:
        user = current_user()
        cust = services.customer(user)
        own = list(cust.accounts) if cust else []
        accts = [services.account(n) for n in own]
        if request.method == "GET":
            return render_template("transfer.html", accounts=accts)
        if limited("transfer-user", user, 30):
            return too_many()
        form = request.form
        payer = form.get("payer", "")
        if payer not in own:
            return render_template(
                "transfer.html", accounts=accts, error=translate(g.lang, "bad_account")
            ), 400
        try:
            tx = services.new_transfer(
                payer,
                form.get("payee_account", ""),
                form.get("payee_name", ""),
                form.get("amount", ""),
                form.get("memo", ""),
            )
        except errors.InvalidInput as exc:
            return render_template("transfer.html", accounts=accts, error=str(exc)), 400
        if tx.amount > services.account(payer).balance:
            return render_template(
                "transfer.html", accounts=accts, error=translate(g.lang, "insufficient")
            ), 400
        ctx = services.context(
            user, Operation.TRANSFER, ip=ip(), device_id=g.device, presented=[], tx=tx
        )
        try:
            password, _ = submitted_password()  # the policy sees a plain PASSWORD here
        except errors.SoftKeyboardError:
            return render_template(
                "transfer.html", accounts=accts, error=translate(g.lang, "tx_password_wrong")
            ), 401
        try:
            result = services.lockout.password_login(
                services.passwords, user, password, context=ctx
            )
        except errors.AccountLocked as exc:
            return render_template("error.html", message=str(exc)), 403
        finally:
            if isinstance(password, bytearray):
                password[:] = b"\x00" * len(password)
        if not result.success:
            return render_template(
                "transfer.html", accounts=accts, error=translate(g.lang, "tx_password_wrong")
            ), 401
        decision = services.decide(ctx.with_presented([Factor.PASSWORD]))
        if decision.outcome is Outcome.DENY:
            return render_template("error.html", message="; ".join(decision.reasons)), 403
        if decision.outcome is Outcome.ALLOW:
            return book(user, tx)
        passkey_why = services.has_passkeys(user)
        if services.passkey_meets(decision) and passkey_why and passkey_origin() is not None:
            # a small transfer: the policy takes a user-verified passkey (or an SMS code)
            session["pending_tx"] = services.tx_json(tx)
            session.pop("pending_signed", None)
            return render_template("confirm.html", tx=tx, passkey_offer=True)
        if services.phone_meets(decision) and services.phone_ready(user) is not None:
            # the customer's phone shield confirms it: the phone shows this transaction and
            # signs it with the two-party key; this page polls until the phone has answered
            try:
                sid = services.phone_confirm_begin(user, tx)
            except errors.AccessDenied as exc:
                return render_template("error.html", message=str(exc)), 403
            session["pending_tx"] = services.tx_json(tx)
            session.pop("pending_signed", None)
            session["phone_tx"] = {"sid": sid, "tx_id": tx.tx_id}
            return render_template("phone_confirm.html", tx=tx)
        if not services.needs_only_sms(decision):
            if not services.needs_usbkey(decision) or services.usbkey_of(user) is None:
                return render_template(
                    "error.html", message=translate(g.lang, "needs_usbkey", tier=decision.fired)
                ), 403
            session["pending_tx"] = services.tx_json(tx)
            session.pop("pending_signed", None)
            return render_template("sign.html", tx=tx, binding=binding(), passkey_why=passkey_why)
        try:
            issued = services.codes.issue(user, "transfer", transaction=tx, lang=g.lang)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        session["pending_tx"] = services.tx_json(tx)
        return render_template(
            "confirm.html", tx=tx, phone=issued.phone_masked, passkey_why=passkey_why
        )

    @app.post("/transfer/sms")
    def transfer_sms() -> Any:
        """The customer chose an SMS code (bound to the transaction) instead of a passkey."""
        user = current_user()
        tx = pending(request.form.get("tx_id", ""))
        if tx is None:
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        if limited("code-user", user, 20):
            return too_many()
        try:
            issued = services.codes.issue(user, "transfer", transaction=tx, lang=g.lang)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        return render_template("confirm.html", tx=tx, phone=issued.phone_masked)

    def passkey_transfer_decision(user: str, tx: wiring.Transaction, factors: list[Factor]) -> Any:
        ctx = services.context(
            user, Operation.TRANSFER, ip=ip(), device_id=g.device, presented=factors, tx=tx
        )
        return services.decide(ctx)

    @app.post("/transfer/passkey/begin")
    def transfer_passkey_begin() -> Any:
        """Sign-in options to confirm the pending transfer with a passkey -- only where the
        policy takes one (a user-verified passkey, small amounts): never for a transfer that
        must be bound to its amount and payee."""
        user = current_user()
        body = request.get_json(silent=True)
        tx_id = body.get("tx_id") if isinstance(body, dict) else None
        tx = pending(tx_id) if isinstance(tx_id, str) else None
        origin = passkey_origin()
        if tx is None or origin is None:
            return jsonify(error=translate(g.lang, "no_pending")), 400
        if limited("passkey-user", user, 20):
            return jsonify(error=translate(g.lang, "rate_limited")), 429
        decision = passkey_transfer_decision(user, tx, [Factor.PASSWORD])
        if not services.passkey_meets(decision):
            return jsonify(error=translate(g.lang, "passkey_no_binding")), 403
        handle, options = services.passkey_login_begin(
            origin, user, services.passkey_level(decision)
        )
        session["passkey_tx"] = {"handle": handle, "tx_id": tx.tx_id}
        return jsonify(options=options)

    @app.post("/transfer/passkey")
    def transfer_passkey() -> Any:
        user = current_user()
        started = session.pop("passkey_tx", None)
        tx = pending(request.form.get("tx_id", ""))
        origin = passkey_origin()
        credential = posted_credential()
        if (
            tx is None
            or origin is None
            or not isinstance(started, dict)
            or started.get("tx_id") != tx.tx_id
        ):
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        if services.replay.seen(tx.tx_id):
            return render_template(
                "error.html", message=translate(g.lang, "duplicate", tx_id=tx.tx_id)
            ), 409
        try:
            if credential is None:
                raise errors.PasskeyRejected("the passkey response is malformed")
            who, factor = services.passkey_login_complete(
                origin, str(started.get("handle", "")), credential
            )
            if who != user:
                raise errors.PasskeyRejected("this passkey belongs to another customer")
        except errors.AccountLocked as exc:
            return render_template("error.html", message=str(exc)), 403
        except EbankAuthError as exc:
            services.audit.record("transfer_refused", user=user, ip=ip(), outcome="deny", tx=tx)
            return render_template("confirm.html", tx=tx, passkey_offer=True, error=str(exc)), 401
        decision = passkey_transfer_decision(user, tx, [Factor.PASSWORD, factor])
        if not decision.allowed:
            return render_template(
                "error.html", message=translate(g.lang, "passkey_no_binding")
            ), 403
        return book(user, tx)

    def binding() -> str:
        """This page session's binding for the agent pairing (never the session id itself)."""
        sid = getattr(session, "sid", "")
        return services.tag("agent-binding", sid)

    def pending(tx_id: str) -> wiring.Transaction | None:
        raw = session.get("pending_tx")
        if not _TX_ID.fullmatch(tx_id) or not isinstance(raw, str):
            return None
        tx = services.tx_from_json(raw)
        return tx if tx.tx_id == tx_id else None

    @app.post("/transfer/sign")
    def transfer_sign() -> Any:
        """The token's confirm-and-sign result for the pending transfer (relayed by the page
        from the local agent): the server checks it over the transfer IT recorded."""
        user = current_user()
        form = request.form
        tx = pending(form.get("tx_id", ""))
        if tx is None:
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        if services.replay.seen(tx.tx_id):
            return render_template(
                "error.html", message=translate(g.lang, "duplicate", tx_id=tx.tx_id)
            ), 409
        sig, signed, serial = (form.get(k, "") for k in ("signature", "signed", "serial"))
        ok = (
            _B64.fullmatch(sig)
            and _B64.fullmatch(signed)
            and _SERIAL.fullmatch(serial)
            and secrets.compare_digest(form.get("binding", ""), binding())
        )
        try:
            if not ok:
                raise errors.InvalidSignature("the signing result is malformed")
            services.verify_signed_transfer(user, tx, sig, signed, serial)
        except errors.DuplicateTransaction:
            return render_template(
                "error.html", message=translate(g.lang, "duplicate", tx_id=tx.tx_id)
            ), 409
        except EbankAuthError:
            services.audit.record("transfer_refused", user=user, ip=ip(), outcome="deny", tx=tx)
            return render_template("error.html", message=translate(g.lang, "sign_invalid")), 400
        factors = [Factor.PASSWORD, Factor.USBKEY_SIGNATURE]
        ctx = services.context(
            user, Operation.TRANSFER, ip=ip(), device_id=g.device, presented=factors, tx=tx
        )
        decision = services.decide(ctx)
        if decision.allowed:
            return book(user, tx, replay_registered=True)
        if decision.outcome is Outcome.STEP_UP and services.needs_only_sms(decision):
            try:
                issued = services.codes.issue(user, "transfer", transaction=tx, lang=g.lang)
            except EbankAuthError as exc:
                return render_template("error.html", message=str(exc)), 503
            session["pending_signed"] = tx.tx_id  # the signature is in; the code comes next
            return render_template("confirm.html", tx=tx, phone=issued.phone_masked)
        return render_template("error.html", message="; ".join(decision.reasons)), 403

    @app.post("/transfer/cancel")
    def transfer_cancel() -> Any:
        """The customer rejected the transfer on the token (or gave up): nothing is booked."""
        user = current_user()
        tx = pending(request.form.get("tx_id", ""))
        if tx is not None:
            reason = request.form.get("reason", "")
            reason = reason if reason in ("rejected", "timeout", "cancelled") else "cancelled"
            services.audit.record("transfer_cancelled", user=user, ip=ip(), outcome=reason, tx=tx)
            session.pop("pending_tx", None)
            session.pop("pending_signed", None)
            session.pop("phone_tx", None)
        return render_template("cancelled.html", tx=tx)

    @app.post("/transfer/confirm")
    def transfer_confirm() -> Any:
        user = current_user()
        tx_id = request.form.get("tx_id", "")
        if not _TX_ID.fullmatch(tx_id):
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        signed_before = session.get("pending_signed") == tx_id
        if services.replay.seen(tx_id) and not signed_before:
            return render_template(
                "error.html", message=translate(g.lang, "duplicate", tx_id=tx_id)
            ), 409
        raw = session.get("pending_tx")
        if not isinstance(raw, str):
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        tx = services.tx_from_json(raw)
        if tx.tx_id != tx_id:
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        try:
            services.codes.verify(user, "transfer", request.form.get("code", "").strip(), tx)
        except errors.OtpError as exc:
            return render_template("confirm.html", tx=tx, error=str(exc)), 401
        presented = [Factor.PASSWORD, Factor.SMS_CODE]
        if signed_before:
            presented.append(Factor.USBKEY_SIGNATURE)
        ctx = services.context(
            user, Operation.TRANSFER, ip=ip(), device_id=g.device, presented=presented, tx=tx
        )
        decision = services.decide(ctx)
        if not decision.allowed:
            return render_template("error.html", message=translate(g.lang, "needs_usbkey")), 403
        return book(user, tx, replay_registered=signed_before)

    def book(user: str, tx: wiring.Transaction, *, replay_registered: bool = False) -> Any:
        try:
            if not replay_registered:  # the signature check registered it already
                services.replay.register(tx)  # AU-8: a transaction id is accepted once
            services.book(user, tx, ip=ip())
        except errors.DuplicateTransaction:
            return render_template(
                "error.html", message=translate(g.lang, "duplicate", tx_id=tx.tx_id)
            ), 409
        except EbankAuthError as exc:
            services.audit.record("transfer_refused", user=user, ip=ip(), outcome="deny", tx=tx)
            return render_template("error.html", message=str(exc)), 400
        session.pop("pending_tx", None)
        session.pop("pending_signed", None)
        return render_template("done.html", tx=tx)

    # ------------------------------------------------------------------ USB Key enrolment
    @app.get("/usbkey")
    def usbkey() -> Any:
        user = current_user()
        return render_template("usbkey.html", record=services.usbkey_of(user), stage="status")

    @app.post("/usbkey/code")
    def usbkey_code() -> Any:
        """Binding a hardware credential is a profile change: an SMS code to the registered
        phone proves it is the customer (AU-4), then the token enrols."""
        user = current_user()
        if services.usbkey_of(user) is not None:
            return redirect(url_for("usbkey"))
        if limited("code-user", user, 20):
            return too_many()
        try:
            issued = services.codes.issue(user, "usbkey-enrol", lang=g.lang)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        return render_template(
            "usbkey.html", record=None, stage="enrol", phone=issued.phone_masked, binding=binding()
        )

    @app.post("/usbkey/enrol")
    def usbkey_enrol() -> Any:
        user = current_user()
        form = request.form
        page = {"record": None, "stage": "enrol", "binding": binding()}
        if limited("code-user", user, 20):
            return too_many()
        try:
            services.codes.verify(user, "usbkey-enrol", form.get("code", "").strip())
        except errors.OtpError as exc:
            return render_template("usbkey.html", error=str(exc), **page), 401
        serial, public_key = form.get("serial", ""), form.get("public_key", "")
        attestation = form.get("attestation", "")
        if (
            not (_SERIAL.fullmatch(serial) and _B64.fullmatch(public_key))
            or len(attestation) > 16384
        ):
            return render_template(
                "usbkey.html", error=translate(g.lang, "enrol_failed"), **page
            ), 400
        try:
            cert = services.enrol_usbkey(user, serial, public_key, attestation, ip=ip())
        except EbankAuthError as exc:
            services.audit.record(
                "usbkey_enrol_refused",
                user=user,
                ip=ip(),
                outcome="deny",
                details={"error": type(exc).__name__},
            )
            return render_template("usbkey.html", error=str(exc), **page), 400
        return render_template(
            "usbkey.html",
            record=services.usbkey_of(user),
            stage="enrolled",
            certificate=cert,
            binding=binding(),
        )

    # ------------------------------------------------------------------ phone shield
    @app.route(PHONE_API + "/<path:rest>", methods=["GET", "POST"])
    def phone_api(rest: str) -> Any:
        """The phone's JSON API (``PhoneShieldApi``).  No session, no CSRF token: a phone is
        not a browser, and every request after the attestation carries a signature of the
        phone's attested device key with a fresh counter; the enrolment's first requests
        carry the link secret and the authorisation code."""
        if limited("phone-api-ip", ip(), 300):
            return jsonify(
                ok=False,
                error={"type": "RateLimited", "message": "too many requests", "reason": None},
            ), 429
        path = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
        status, doc = services.phone_api_call(request.method, path, request.get_data(), ip=ip())
        return jsonify(doc), status

    csrf.exempt(phone_api)

    def phone_page(stage: str = "status", status: int = 200, **kw: Any) -> Any:
        user = current_user()
        return render_template(
            "phone.html", record=services.phone_shield_of(user), stage=stage, **kw
        ), status

    @app.get("/phone")
    def phone() -> Any:
        notice = session.pop("phone_notice", None)
        return phone_page(notice=translate(g.lang, notice) if notice else None)

    @app.post("/phone/start")
    def phone_start() -> Any:
        """Enrolling a phone shield binds a signing credential: the identity step first
        (login password + an SMS code to the registered phone, PS-5)."""
        user = current_user()
        if limited("code-user", user, 20):
            return too_many()
        try:
            eid, phone_masked = services.phone_enrol_start(user)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        session["phone_enrol"] = eid
        current = services.phone_shield_of(user)
        session["phone_before"] = current["device_id"] if current else ""
        return phone_page("identity", phone=phone_masked)

    @app.post("/phone/identity")
    def phone_identity() -> Any:
        user = current_user()
        eid = session.get("phone_enrol")
        if not isinstance(eid, str) or not _ENROLMENT_ID.fullmatch(eid):
            return redirect(url_for("phone"))
        if limited("code-user", user, 20):
            return too_many()
        form = request.form
        try:
            shown = services.phone_enrol_identity(
                user,
                eid,
                form.get("password", ""),
                form.get("code", "").strip(),
                request.host_url,
            )
        except errors.AccountLocked as exc:
            session.pop("phone_enrol", None)
            return render_template("error.html", message=str(exc)), 403
        except errors.ConfigurationError as exc:  # no public URL for the link
            return render_template("error.html", message=str(exc)), 503
        except EbankAuthError as exc:
            services.audit.record("phone_shield_identity", user=user, ip=ip(), outcome="deny")
            session.pop("phone_enrol", None)  # one try per enrolment: start again
            return phone_page(
                status=401, error=translate(g.lang, "phone_identity_failed", reason=str(exc))
            )
        return phone_page("link", **shown)

    @app.get("/phone/state")
    def phone_state() -> Any:
        """For phone.js on the link page: has the phone finished the enrolment?"""
        user = current_user()
        rec = services.phone_shield_of(user)
        before = session.get("phone_before", "")
        return jsonify(enrolled=rec is not None and rec["device_id"] != before)

    @app.post("/phone/revoke")
    def phone_revoke() -> Any:
        user = current_user()
        if services.revoke_phone_shield(user, ip=ip(), by="customer"):
            session["phone_notice"] = "phone_revoked"
        return redirect(url_for("phone"))

    @app.post("/transfer/phone/poll")
    def transfer_phone_poll() -> Any:
        """phone.js asks (CSRF header) whether the phone has answered.  Once it has signed,
        the server checks the joint signature over the transaction IT recorded and books."""
        user = current_user()
        started = session.get("phone_tx")
        body = request.get_json(silent=True)
        tx_id = body.get("tx_id") if isinstance(body, dict) else None
        tx = pending(tx_id) if isinstance(tx_id, str) else None
        if tx is None or not isinstance(started, dict) or started.get("tx_id") != tx.tx_id:
            return jsonify(status="gone"), 400
        try:
            confirmed = services.phone_confirm_poll(user, str(started.get("sid", "")), tx)
        except errors.SigningRefused as exc:
            reason = getattr(exc.status, "value", exc.status) or "expired"
            event = "transfer_cancelled" if reason == "rejected" else "transfer_refused"
            services.audit.record(event, user=user, ip=ip(), outcome=str(reason), tx=tx)
            outcome = "rejected" if reason == "rejected" else "failed"
            session["phone_outcome"] = {"kind": outcome, "tx": services.tx_json(tx)}
            session.pop("phone_tx", None)
            return jsonify(status=outcome)
        except EbankAuthError as exc:
            services.audit.record("transfer_refused", user=user, ip=ip(), outcome="deny", tx=tx)
            session["phone_outcome"] = {"kind": "error", "message": str(exc)}
            session.pop("phone_tx", None)
            return jsonify(status="error")
        if confirmed is None:
            return jsonify(status="pending")
        session.pop("phone_tx", None)
        factors = [Factor.PASSWORD, Factor.PHONE_SHIELD_SIGNATURE]
        ctx = services.context(
            user, Operation.TRANSFER, ip=ip(), device_id=g.device, presented=factors, tx=confirmed
        )
        if not services.decide(ctx).allowed:
            services.phone_limit_release(user, confirmed)
            session["phone_outcome"] = {
                "kind": "error",
                "message": translate(g.lang, "needs_usbkey"),
            }
            return jsonify(status="error")
        try:  # the signature check registered the transaction id in the replay cache
            services.book(user, confirmed, ip=ip())
        except EbankAuthError as exc:  # funds, duplicate: nothing booked
            services.phone_limit_release(user, confirmed)
            services.audit.record(
                "transfer_refused", user=user, ip=ip(), outcome="deny", tx=confirmed
            )
            session["phone_outcome"] = {"kind": "error", "message": str(exc)}
            return jsonify(status="error")
        session.pop("pending_tx", None)
        session["phone_outcome"] = {"kind": "done", "tx": services.tx_json(confirmed)}
        return jsonify(status="done")

    @app.get("/transfer/phone/result")
    def transfer_phone_result() -> Any:
        current_user()
        outcome = session.pop("phone_outcome", None)
        if not isinstance(outcome, dict):
            return render_template("error.html", message=translate(g.lang, "no_pending")), 400
        kind = outcome.get("kind")
        if kind == "done":
            return render_template("done.html", tx=services.tx_from_json(outcome["tx"]))
        if kind == "rejected":
            return render_template("cancelled.html", tx=services.tx_from_json(outcome["tx"]))
        if kind == "failed":
            return render_template("error.html", message=translate(g.lang, "phone_failed")), 403
        return render_template("error.html", message=str(outcome.get("message", ""))), 403

    # ------------------------------------------------------------------ passkeys (settings)
    def passkeys_page(stage: str = "list", status: int = 200, **kw: Any) -> Any:
        user = current_user()
        return render_template(
            "passkeys.html",
            rows=services.passkeys(user),
            available=passkey_origin() is not None,
            stage=stage,
            **kw,
        ), status

    def stepped_up() -> bool:
        until = session.get("passkey_stepup")
        return isinstance(until, (int, float)) and services.clock() <= until

    @app.get("/passkeys")
    def passkeys() -> Any:
        notice = session.pop("passkey_notice", None)
        return passkeys_page(notice=translate(g.lang, notice) if notice else None)

    @app.post("/passkeys/code")
    def passkeys_code() -> Any:
        """Adding a credential is a profile change: an SMS code to the registered phone
        first (like binding a USB Key)."""
        user = current_user()
        if limited("code-user", user, 20):
            return too_many()
        try:
            issued = services.codes.issue(user, "passkey-enrol", lang=g.lang)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        return passkeys_page("code", phone=issued.phone_masked)

    @app.post("/passkeys/verify")
    def passkeys_verify() -> Any:
        user = current_user()
        if limited("code-user", user, 20):
            return too_many()
        try:
            services.codes.verify(user, "passkey-enrol", request.form.get("code", "").strip())
        except errors.OtpError as exc:
            return passkeys_page("code", 401, error=str(exc))
        session["passkey_stepup"] = services.clock() + PASSKEY_STEPUP_SECONDS
        return passkeys_page("register")

    @app.post("/passkeys/register/begin")
    def passkeys_register_begin() -> Any:
        user = current_user()
        origin = passkey_origin()
        if origin is None:
            return jsonify(error=translate(g.lang, "passkey_unavailable")), 400
        if not stepped_up():
            return jsonify(error=translate(g.lang, "passkey_stepup_needed")), 403
        if limited("passkey-user", user, 20):
            return jsonify(error=translate(g.lang, "rate_limited")), 429
        handle, options = services.passkey_register_begin(user, origin)
        session["passkey_register"] = handle
        return jsonify(options=options)

    @app.post("/passkeys/register/complete")
    def passkeys_register_complete() -> Any:
        user = current_user()
        handle = session.pop("passkey_register", None)
        origin = passkey_origin()
        credential = posted_credential()
        if not stepped_up() or not isinstance(handle, str) or origin is None:
            return passkeys_page(status=403, error=translate(g.lang, "passkey_stepup_needed"))
        try:
            if credential is None:
                raise errors.PasskeyRejected("the passkey response is malformed")
            services.passkey_register_complete(user, origin, handle, credential)
        except EbankAuthError as exc:
            return passkeys_page(
                "register", 400, error=translate(g.lang, "passkey_refused", reason=str(exc))
            )
        session.pop("passkey_stepup", None)  # one passkey per step-up
        session["passkey_notice"] = "passkey_added"
        return redirect(url_for("passkeys"))

    @app.post("/passkeys/remove")
    def passkeys_remove() -> Any:
        user = current_user()
        cred = request.form.get("id", "")
        if _CREDENTIAL_ID.fullmatch(cred) and services.remove_passkey(user, cred, ip=ip()):
            session["passkey_notice"] = "passkey_removed"
        return redirect(url_for("passkeys"))

    # ------------------------------------------------------------------ back office
    def current_staff() -> str:
        staff = session.get("staff")
        if not isinstance(staff, str):
            abort(redirect(url_for("staff_login")))
        return staff

    def staff_origin() -> str:
        return request.host_url.rstrip("/")

    @app.route("/staff/login", methods=["GET", "POST"])
    def staff_login() -> Any:
        """Staff sign in with a password AND their USB Key (a signature over a fresh
        challenge bound to this site's origin by the agent)."""
        if request.method == "GET":
            return render_template("staff_login.html", stage="password")
        if limited("login-ip", ip(), 60):
            return too_many()
        staff = request.form.get("username", "").strip()
        if not _USERNAME.fullmatch(staff):
            return login_failed("staff_login.html", stage="password")
        try:
            result = services.staff_lockout.password_login(
                services.staff_passwords, staff, request.form.get("password", "")
            )
        except errors.AccountLocked as exc:
            return render_template("staff_login.html", stage="password", error=str(exc)), 403
        if not result.success:
            return login_failed("staff_login.html", stage="password")
        challenge = services.staff_challenge()
        session.clear()
        session.update(lang=g.lang, staff_pending=staff, staff_challenge=challenge)
        return render_template(
            "staff_login.html", stage="hardware", challenge=challenge, binding=binding()
        )

    @app.post("/staff/login/token")
    def staff_login_token() -> Any:
        staff = session.pop("staff_pending", None)
        challenge = session.pop("staff_challenge", None)  # one try per challenge
        if not isinstance(staff, str) or not isinstance(challenge, str):
            return redirect(url_for("staff_login"))
        sig = request.form.get("signature", "")
        try:
            if not _B64.fullmatch(sig):
                raise errors.InvalidSignature("malformed signature")
            services.verify_staff_login(staff, staff_origin(), challenge, sig)
        except EbankAuthError:
            services.audit.record("staff_login", user=staff, ip=ip(), outcome="deny")
            return login_failed("staff_login.html", stage="password")
        lang = g.lang
        session.clear()
        session.rotate = True  # type: ignore[attr-defined]
        session.update(staff=staff, lang=lang)
        services.audit.record("staff_login", user=staff, ip=ip(), outcome="ok")
        return redirect(url_for("staff_home"))

    @app.get("/staff")
    def staff_home() -> Any:
        current_staff()
        return render_template(
            "staff.html",
            report=services.audit.check(),
            lockouts=services.lockouts(),
            devices=services.device_list(),
            usbkeys=services.usbkey_list(),
            phones=services.phone_shield_list(),
        )

    @app.post("/staff/unlock")
    def staff_unlock() -> Any:
        staff = current_staff()
        user = request.form.get("user", "")
        if user in services.customer_names():
            services.lockout.unlock(user, admin=staff, reason="back office")
        return redirect(url_for("staff_home"))

    @app.post("/staff/unbind-usbkey")
    def staff_unbind_usbkey() -> Any:
        staff = current_staff()
        user = request.form.get("user", "")
        if user in services.customer_names():
            services.unbind_usbkey(user, staff=staff, ip=ip())
        return redirect(url_for("staff_home"))

    @app.post("/staff/revoke-phone-shield")
    def staff_revoke_phone_shield() -> Any:
        staff = current_staff()
        user = request.form.get("user", "")
        if user in services.customer_names():
            services.revoke_phone_shield(user, ip=ip(), by=f"staff:{staff}")
        return redirect(url_for("staff_home"))

    @app.post("/staff/logout")
    def staff_logout() -> Any:
        if "staff" in session:
            services.audit.record("staff_logout", user=session["staff"], ip=ip(), outcome="ok")
        session.clear()
        return redirect(url_for("staff_login"))

    app.register_blueprint(
        stepups.make_blueprint(services, step_up, send_login_code)
    )  # TOTP, USB Key, devices

    # ------------------------------------------------------------------ demo
    @app.get("/demo/outbox")
    def demo_outbox() -> Any:
        if not app.config["DEMO"]:
            abort(404)
        return render_template("outbox.html", messages=reversed(services.outbox.messages()))

    return app


def _page(page: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in page.items() if k != "template"}
