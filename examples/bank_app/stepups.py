"""Login step-ups besides the SMS code, and the customer's security settings (issue 12,
AU-1/AU-4/AU-7): a TOTP authenticator app, the USB Key's login signature (the agent's
``/v1/authenticate``, as the back office uses it) and up to 3 trusted devices.

A Flask blueprint registered by ``create_app``; like the rest of the web layer it talks to
ebank_auth only through :mod:`wiring`.  ``step_up`` is the app's own "ask the policy what
this login still needs" function: each factor proved here is added to the login and the
policy decides again."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from i18n import translate
from wiring import BankServices, EbankAuthError, Factor, errors

#: how long the SMS step-up before changing a security setting stays valid (seconds)
SETTINGS_STEPUP_SECONDS = 300.0
_B64 = re.compile(r"[A-Za-z0-9+/=]{1,8192}")
_SERIAL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CODE = re.compile(r"[0-9]{6,10}")
_HANDLE = re.compile(r"[0-9a-f]{16}")
_KNOWLEDGE = (Factor.PASSWORD.value, Factor.SOFT_KEYBOARD_PASSWORD.value)


def make_blueprint(
    services: BankServices,
    step_up: Callable[[str], Any],
    send_login_code: Callable[[str], Any],
) -> Blueprint:
    """The step-up routes; ``step_up`` and ``send_login_code`` are the app's own (app.py)."""
    bp = Blueprint("stepups", __name__)

    # ------------------------------------------------------------------ helpers
    def ip() -> str:
        return request.remote_addr or ""

    def origin() -> str:
        """This site's origin, which the agent puts into the signed login message."""
        return request.host_url.rstrip("/")

    def binding() -> str:
        return services.tag("agent-binding", getattr(session, "sid", ""))

    def too_many() -> tuple[str, int]:
        return render_template("error.html", message=translate(g.lang, "rate_limited")), 429

    def current_user() -> str:
        user = session.get("user")
        if not isinstance(user, str):
            abort(redirect(url_for("login")))
        return user

    def pending_choice(factor: Factor) -> str:
        """The customer in the middle of a login whose step-up offered ``factor``."""
        username = session.get("pending")
        choices = session.get("choices")
        if (
            not isinstance(username, str)
            or session.get("stage") != "choose"
            or not isinstance(choices, list)
            or factor.value not in choices
        ):
            abort(redirect(url_for("login")))
        return username

    def choose_page(status: int = 200, **kw: Any) -> Any:
        choices = [Factor(c) for c in session.get("choices", [])]
        challenge = None
        if Factor.USBKEY_SIGNATURE in choices:
            challenge = services.login_challenge()
            session["login_challenge"] = challenge  # one try per challenge
        return render_template(
            "stepup_choose.html",
            sms=Factor.SMS_CODE in choices,
            totp=Factor.TOTP in choices,
            challenge=challenge,
            binding=binding(),
            **kw,
        ), status

    def failed(status: int = 401) -> Any:
        # never which factor was wrong, the same text as every other login step
        return choose_page(status, error=translate(g.lang, "login_failed"))

    def proved(username: str, factor: Factor) -> Any:
        session["factors"] = [*session.get("factors", []), factor.value]
        for key in ("choices", "login_challenge"):
            session.pop(key, None)
        return step_up(username)

    # ------------------------------------------------------------------ login
    @bp.get("/login/choose")
    def login_choose() -> Any:
        username = session.get("pending")
        if not isinstance(username, str) or session.get("stage") != "choose":
            return redirect(url_for("login"))
        return choose_page()

    @bp.post("/login/choose/sms")
    def login_choose_sms() -> Any:
        """The SMS code is sent only when the customer chooses it."""
        username = pending_choice(Factor.SMS_CODE)
        if not services.rate_ok("code-user", username, 20):
            return too_many()
        return send_login_code(username)

    @bp.post("/login/totp")
    def login_totp() -> Any:
        username = pending_choice(Factor.TOTP)
        if not services.rate_ok("code-user", username, 20):
            return too_many()
        code = request.form.get("code", "").strip()
        try:
            if not _CODE.fullmatch(code):
                raise errors.CodeInvalid("the code must be digits")
            services.totp_verify(username, code)  # a code is accepted once (ReplayDetected)
        except errors.RateLimited:
            return too_many()
        except errors.OtpError:
            services.audit.record("login_totp", user=username, ip=ip(), outcome="deny")
            return failed()
        return proved(username, Factor.TOTP)

    @bp.post("/login/usbkey")
    def login_usbkey() -> Any:
        username = pending_choice(Factor.USBKEY_SIGNATURE)
        challenge = session.pop("login_challenge", None)  # one try per challenge
        if not isinstance(challenge, str):
            return failed(400)
        if not services.rate_ok("usbkey-user", username, 20):
            return too_many()
        sig = request.form.get("signature", "")
        try:
            if not _B64.fullmatch(sig):
                raise errors.InvalidSignature("malformed signature")
            services.verify_login_signature(username, origin(), challenge, sig)
        except EbankAuthError:
            services.audit.record("login_usbkey", user=username, ip=ip(), outcome="deny")
            return failed()
        return proved(username, Factor.USBKEY_SIGNATURE)

    # ------------------------------------------------------------------ settings
    def stepped_up() -> bool:
        until = session.get("settings_stepup")
        return isinstance(until, (int, float)) and services.clock() <= until

    def settings_page(stage: str = "status", status: int = 200, **kw: Any) -> Any:
        user = current_user()
        return render_template(
            "security.html",
            stage=stage,
            stepped_up=stepped_up(),
            totp_on=services.totp_enabled(user),
            usbkey=services.usbkey_of(user),
            login_key=services.login_key_of(user) is not None,
            devices=services.my_devices(user, g.device),
            max_trusted=services.devices.max_trusted,
            binding=binding(),
            **kw,
        ), status

    def need_stepup() -> Any:
        return settings_page(status=403, error=translate(g.lang, "settings_stepup_needed"))

    @bp.get("/security")
    def security() -> Any:
        notice = session.pop("settings_notice", None)
        return settings_page(notice=translate(g.lang, notice) if notice else None)

    @bp.post("/security/code")
    def security_code() -> Any:
        """Changing a security setting is a profile change: an SMS code first (AU-4)."""
        user = current_user()
        if not services.rate_ok("code-user", user, 20):
            return too_many()
        try:
            issued = services.codes.issue(user, "settings", lang=g.lang)
        except EbankAuthError as exc:
            return render_template("error.html", message=str(exc)), 503
        return settings_page("code", phone=issued.phone_masked)

    @bp.post("/security/verify")
    def security_verify() -> Any:
        user = current_user()
        if not services.rate_ok("code-user", user, 20):
            return too_many()
        try:
            services.codes.verify(user, "settings", request.form.get("code", "").strip())
        except errors.OtpError as exc:
            return settings_page("code", 401, error=str(exc))
        session["settings_stepup"] = services.clock() + SETTINGS_STEPUP_SECONDS
        return redirect(url_for("stepups.security"))

    @bp.post("/security/totp/begin")
    def security_totp_begin() -> Any:
        user = current_user()
        if not stepped_up():
            return need_stepup()
        try:
            uri, qr = services.totp_begin(user)
        except EbankAuthError as exc:
            return settings_page(status=409, error=str(exc))
        return settings_page("totp", otpauth=uri, qr=qr)

    @bp.post("/security/totp/confirm")
    def security_totp_confirm() -> Any:
        user = current_user()
        if not stepped_up():
            return need_stepup()
        if not services.rate_ok("code-user", user, 20):
            return too_many()
        code = request.form.get("code", "").strip()
        try:
            if not _CODE.fullmatch(code):
                raise errors.CodeInvalid("the code must be the 6 digits the app shows")
            services.totp_confirm(user, code, ip=ip())
        except errors.OtpError as exc:
            return settings_page("totp-confirm", 401, error=str(exc))
        session["settings_notice"] = "totp_on"
        return redirect(url_for("stepups.security"))

    @bp.post("/security/totp/remove")
    def security_totp_remove() -> Any:
        user = current_user()
        if not stepped_up():
            return need_stepup()
        services.totp_remove(user, ip=ip())
        session["settings_notice"] = "totp_removed"
        return redirect(url_for("stepups.security"))

    def usbkey_page(stage: str, status: int = 200, **kw: Any) -> Any:
        challenge = services.login_challenge()
        session["settings_challenge"] = challenge  # one try per challenge
        return settings_page(stage, status, challenge=challenge, **kw)

    @bp.get("/security/login-key")
    def security_login_key() -> Any:
        """Register the bound USB Key's LOGIN key (the agent signs a fresh challenge)."""
        user = current_user()
        if not stepped_up():
            return need_stepup()
        if services.usbkey_of(user) is None:
            return settings_page(status=409, error=translate(g.lang, "login_key_needs_usbkey"))
        return usbkey_page("login-key")

    @bp.post("/security/login-key")
    def security_login_key_post() -> Any:
        user = current_user()
        challenge = session.pop("settings_challenge", None)
        if not stepped_up() or not isinstance(challenge, str):
            return need_stepup()
        form = request.form
        sig, pub, serial = (
            form.get("signature", ""),
            form.get("public_key", ""),
            form.get("serial", ""),
        )
        try:
            if not (_B64.fullmatch(sig) and _B64.fullmatch(pub) and _SERIAL.fullmatch(serial)):
                raise errors.InvalidSignature("the token's answer is malformed")
            services.register_login_key(user, origin(), challenge, sig, pub, serial, ip=ip())
        except EbankAuthError as exc:
            services.audit.record(
                "usbkey_login_key_refused",
                user=user,
                ip=ip(),
                outcome="deny",
                details={"error": type(exc).__name__},
            )
            return usbkey_page("login-key", 400, error=str(exc))
        session["settings_notice"] = "login_key_registered"
        return redirect(url_for("stepups.security"))

    @bp.get("/security/trust")
    def security_trust() -> Any:
        """Trust this device: the USB Key signs a fresh challenge (AU-7 needs a USB Key
        signature or liveness next to the password of this login)."""
        user = current_user()
        if services.login_key_of(user) is None:
            return settings_page(status=409, error=translate(g.lang, "trust_needs_login_key"))
        return usbkey_page("trust")

    @bp.post("/security/trust")
    def security_trust_post() -> Any:
        user = current_user()
        challenge = session.pop("settings_challenge", None)
        if not isinstance(challenge, str):
            return redirect(url_for("stepups.security"))
        if not services.rate_ok("usbkey-user", user, 20):
            return too_many()
        sig = request.form.get("signature", "")
        knowledge = [Factor(f) for f in session.get("login_factors", []) if f in _KNOWLEDGE]
        try:
            if not _B64.fullmatch(sig):
                raise errors.InvalidSignature("malformed signature")
            services.verify_login_signature(user, origin(), challenge, sig)
            services.trust_device(
                user, g.device, ip=ip(), presented=[*knowledge, Factor.USBKEY_SIGNATURE]
            )
        except EbankAuthError as exc:
            return settings_page("status", 403, error=str(exc))
        session["settings_notice"] = "device_trusted_done"
        return redirect(url_for("stepups.security"))

    @bp.post("/security/devices/revoke")
    def security_revoke() -> Any:
        user = current_user()
        handle = request.form.get("device", "")
        if _HANDLE.fullmatch(handle) and services.revoke_device_trust(user, handle):
            session["settings_notice"] = "device_revoked"
        return redirect(url_for("stepups.security"))

    return bp
