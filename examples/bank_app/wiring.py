"""The one module of the bank app that knows ebank_auth: every service is built here.

The web layer (``app.py``) only calls :class:`BankServices`; it never imports
``ebank_auth`` itself.  Everything lives in ONE SQLite store (``<state>/bank.db``):
customers, accounts, balances, transfers, sessions, rate limits and all auth state
(passwords, lockout counters, one-time codes, devices, replay cache, audit log).
The same code runs on Redis or PostgreSQL by changing the store URL.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ebank_auth import errors
from ebank_auth.agent import login_message
from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.crypto import sm2, sm3, x509
from ebank_auth.masking import mask_account, mask_phone
from ebank_auth.otp import (
    AuthenticatorService,
    AuthenticatorSettings,
    CodeService,
    DeliveryChannel,
    FileGateway,
    MappingPhoneRegistry,
    OutboundMessage,
    SecretSealer,
)
from ebank_auth.otp.qr import qr_svg
from ebank_auth.passwords import PasswordHasher, PasswordService, PersonalInfo
from ebank_auth.phone_shield import (
    API_PREFIX,
    AttestationPolicy,
    AttestationTrust,
    DeviceState,
    PasswordAndSmsCode,
    PasswordAndSmsIdentity,
    PhoneShieldApi,
    PhoneShieldServer,
    SessionStatus,
)
from ebank_auth.phone_shield.emulator import (
    DEFAULT_PACKAGE,
    SoftwareAttestationAuthority,
    default_signing_digest,
)
from ebank_auth.policy import (
    AuthContext,
    CertificateSource,
    ConfirmationVerifier,
    CredentialRegistry,
    CustomerType,
    Decision,
    DeviceRegistry,
    DeviceStatus,
    Factor,
    GatewayNotifier,
    LoginLockout,
    Operation,
    Outcome,
    PolicyEngine,
    ReplayCache,
    SignerKind,
)
from ebank_auth.softkeyboard import KeyboardMode, SoftKeyboard
from ebank_auth.store import Store, open_store
from ebank_auth.transaction import Transaction, new_tx_id
from ebank_auth.usbkey import TrustConfig, resolve_trust, verify_key_attestation
from ebank_auth.webauthn import (
    PasskeyRegistry,
    RelyingParty,
    UserVerification,
    user_verification_for,
)

__all__ = [
    "DEMO_CUSTOMERS",
    "PHONE_API_PREFIX",
    "Account",
    "BankServices",
    "Customer",
    "EbankAuthError",
    "Factor",
    "Operation",
    "Outcome",
    "Transaction",
    "UserVerification",
    "errors",
    "mask_account",
]

EbankAuthError = errors.EbankAuthError
_BEIJING = ZoneInfo("Asia/Shanghai")
log = logging.getLogger("bank_app")

BANK_NAME = "示例银行"
#: where the phone-shield HTTP contract is mounted (the phone's JSON API, CSRF-exempt: every
#: request after the attestation is signed by the phone's attested device key)
PHONE_API_PREFIX = API_PREFIX
#: the demo bank's mobile app: Android package and signing-certificate digest its key
#: attestation must name (the software phone's defaults; a real bank pins its own app's)
PHONE_APP_PACKAGE = DEFAULT_PACKAGE
PHONE_APP_SIGNING_DIGESTS = frozenset({default_signing_digest()})
#: default daily limit of phone-confirmed transfers per phone shield (CNY), by the hardware
#: level the phone's key attestation states: StrongBox (a separate secure chip) gets more
#: than a TEE (an isolated mode of the main processor)
PHONE_DAILY_LIMITS: dict[str, str] = {"strongbox": "1000000.00", "trusted_environment": "200000.00"}
#: the policy factors a passkey sign-in gives (``passkey_uv`` when the authenticator
#: verified the customer with its PIN or biometric)
PASSKEY_FACTORS = frozenset({Factor.PASSKEY, Factor.PASSKEY_UV})

#: demo customers seeded on the first run (documented in docs/bank-app.md); each must
#: change the initial password at first login.
DEMO_CUSTOMERS: tuple[dict[str, str], ...] = (
    {
        "username": "zhangsan",
        "name": "张三",
        "password": "DemoPass2026",
        "phrase": "青山绿水 2026",
        "phone": "+8613800000001",
        "account": "6222020200112233445",
        "balance": "52000.00",
    },
    {
        "username": "lisi",
        "name": "李四",
        "password": "DemoPass2026",
        "phrase": "明月清风 88",
        "phone": "+8613800000002",
        "account": "6222020200998877665",
        "balance": "8000.00",
    },
    {
        # a corporate customer: every funds movement needs a USB Key signature (UK-11)
        "username": "hengtai",
        "name": "恒泰贸易有限公司",
        "password": "DemoPass2026",
        "phrase": "恒久泰和 18",
        "phone": "+8613800000003",
        "account": "6222020200555566667",
        "balance": "3000000.00",
        "type": "corporate",
    },
)

#: the back-office staff member seeded on the first run (password must be changed? no: staff
#: accounts are provisioned by the bank; the demo's is documented in docs/bank-app.md)
DEMO_STAFF: dict[str, str] = {"username": "admin", "password": "Staff-Pass-2026"}


@dataclass(frozen=True)
class Customer:
    username: str
    name: str
    phrase: str  # reserved anti-phishing phrase (AU-11)
    phone: str
    accounts: tuple[str, ...]
    kind: str = "personal"  # personal | corporate

    @property
    def corporate(self) -> bool:
        return self.kind == "corporate"


@dataclass(frozen=True)
class Account:
    number: str
    currency: str
    balance: Decimal
    history: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def masked(self) -> str:
        return mask_account(self.number)


def _publish_once(path: Path, data: bytes) -> bytes:
    """Write ``data`` to ``path`` (0600) unless another process got there first; returns what
    ``path`` holds.  Written under a private name and linked into place, so several worker
    processes starting together agree on one value and never read a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another worker published first: theirs
            os.link(tmp, path)
    finally:
        tmp.unlink()
    return path.read_bytes()


def _key_file(path: Path, size: int) -> bytes:
    """A random secret kept in ``path`` (0600), created on first use."""
    if not path.exists():
        _publish_once(path, secrets.token_bytes(size))
    data = path.read_bytes()
    if len(data) != size:
        raise errors.ConfigurationError(f"{path} is damaged: restore it from the backup")
    return data


def _sm2_key(path: Path) -> sm2.SM2PrivateKey:
    if not path.exists():
        _publish_once(path, sm2.generate_private_key().to_bytes())
    return sm2.private_key_from_bytes(path.read_bytes())


class BankServices:
    """All services of the app over one store, plus the small ledger."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        argon2_memory_kib: int = 64 * 1024,
        clock: Callable[[], float] | None = None,
        token_roots: Sequence[Path] = (),
        software_token_state: Path | None = None,
        staff_keys: Sequence[Path] = (),
        store_url: str | None = None,
        passkey_rp_id: str | None = None,
        passkey_origins: Sequence[str] = (),
        passkey_usernameless: bool = False,
        phone_attestation_roots: Sequence[Path] = (),
        software_phone_state: Path | None = None,
        phone_url: str | None = None,
        phone_daily_limits: Mapping[str, str] | None = None,
    ) -> None:
        self.state = Path(state_dir)
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        # one store for everything; SQLite in the state directory unless a URL names another
        # (postgresql://…, redis://…, redis+cluster://…: several workers or nodes share it)
        url = store_url or f"sqlite:///{(self.state / 'bank.db').resolve()}"
        self.store: Store = open_store(url, clock)
        self.clock = self.store.clock
        self._tag_key = _key_file(self.state / "tags.key", 32)
        self.csrf_key = _key_file(self.state / "csrf.key", 32)
        self.audit = AuditLog(self.store, HmacSm3Key(_key_file(self.state / "audit.key", 32)))
        self.outbox = FileGateway(self.state / "outbox", retention=3600)
        # the policy's night rules read the app's clock (the tests move it; production: time.time)
        self.engine = PolicyEngine(clock=lambda: datetime.fromtimestamp(self.clock(), timezone.utc))
        self.phones = _StorePhones(self.store)
        self.lockout = LoginLockout.from_policy(
            self.store,
            self.engine.policy,
            notifier=GatewayNotifier(self.outbox, self.phones),
            audit=self.audit,
        )
        self.passwords = PasswordService(
            self.store,
            PasswordHasher(memory_cost_kib=argon2_memory_kib),
            lockout=self.lockout,
        )
        self.codes = CodeService(
            self.store,
            self.outbox,
            self.phones,
            _key_file(self.state / "otp.key", 32),
            bank_name="示例银行",
        )
        self.devices = DeviceRegistry.from_policy(self.store, self.engine.policy, self.audit)
        self.replay = ReplayCache(self.store)
        self.keyboard = SoftKeyboard(self.store, _sm2_key(self.state / "softkeyboard.key"))
        # USB Keys: the manufacturer roots that make a token genuine, the bank's own CA that
        # certifies each enrolled transaction key (serial <-> certificate <-> customer, UK-10)
        self.token_trust: TrustConfig | None = None
        if token_roots or software_token_state is not None:
            self.token_trust = resolve_trust(
                list(token_roots), software_token_state=software_token_state
            )
        self.ca = _bank_ca(self.state)
        self.credentials = CredentialRegistry(self.store, namespace="bankcred")
        self.confirmations = ConfirmationVerifier(
            self.credentials,
            self.replay,
            CertificateSource([self.ca.certificate]),
            audit=self.audit,
        )
        # staff: their own passwords and lockout (never the customers' counters)
        self.staff_lockout = LoginLockout.from_policy(
            self.store, self.engine.policy, audit=self.audit, namespace="stafflock"
        )
        self.staff_passwords = PasswordService(
            self.store,
            PasswordHasher(memory_cost_kib=argon2_memory_kib),
            lockout=self.staff_lockout,
            namespace="staffpw",
        )
        # passkeys (WebAuthn): one registry in the store; the server per relying party
        self.passkey_registry = PasskeyRegistry(self.store)
        self.passkey_usernameless = bool(passkey_usernameless)
        self._passkey_rp: RelyingParty | None = None
        if passkey_rp_id is not None or passkey_origins:
            if passkey_rp_id is None or not passkey_origins:
                raise errors.ConfigurationError(
                    "passkeys need both the RP ID and its origins: give --rp-id and --origin "
                    "(or neither, for the demo's localhost default)"
                )
            self._passkey_rp = RelyingParty(
                id=passkey_rp_id, name=BANK_NAME, origins=tuple(passkey_origins)
            )
        self._passkey_servers: dict[str, Any] = {}
        self._passkey_lock = threading.Lock()
        roots = [Path(r).read_bytes() for r in phone_attestation_roots]
        if software_phone_state is not None:
            # demo: the software phone's TEST attestation root (made on first use, as the
            # phone itself would); a real bank trusts only Google's hardware roots
            roots.append(
                SoftwareAttestationAuthority.load_or_create(software_phone_state).root_der()
            )
        self._init_phone_shield(roots, phone_url, phone_daily_limits)
        self._seed()
        for path in staff_keys:
            self.register_staff_key(DEMO_STAFF["username"], Path(path).read_bytes())

    # ------------------------------------------------------------------ customers
    def _seed(self) -> None:
        if not self.store.put_if_absent("bank:seeded", b"1"):
            return
        for c in DEMO_CUSTOMERS:
            cust = {
                "name": c["name"],
                "phrase": c["phrase"],
                "phone": c["phone"],
                "accounts": [c["account"]],
                "type": c.get("type", "personal"),
            }
            self.store.put_if_absent(f"bank:cust:{c['username']}", json.dumps(cust).encode())
            acct = {"currency": "CNY", "balance": c["balance"], "history": [], "tx_ids": []}
            self.store.put_if_absent(f"bank:acct:{c['account']}", json.dumps(acct).encode())
            self.passwords.set_initial_password(c["username"], c["password"])
        # staff are provisioned by the bank: the initial password is replaced at once
        staff, initial = DEMO_STAFF["username"], secrets.token_urlsafe(12) + "aA1!"
        self.staff_passwords.set_initial_password(staff, initial)
        self.staff_passwords.change_password(
            staff, initial, DEMO_STAFF["password"], PersonalInfo(username=staff)
        )
        log.info("demo customers seeded")

    def customer(self, username: str) -> Customer | None:
        if not isinstance(username, str) or not 1 <= len(username) <= 64:
            return None
        raw = self.store.get(f"bank:cust:{username}")
        if raw is None:
            return None
        d = json.loads(raw)
        return Customer(
            username,
            d["name"],
            d["phrase"],
            d["phone"],
            tuple(d["accounts"]),
            d.get("type", "personal"),
        )

    def decoy_phrase(self, username: str) -> str:
        """For an unknown username: a stable made-up phrase, so the page does not tell
        whether the username exists (the real customer knows their own phrase)."""
        words = ("春华秋实", "松风竹影", "碧海蓝天", "山高水长", "云卷云舒", "星河灿烂")
        h = int.from_bytes(sm3.hmac(self._tag_key, b"decoy:" + username.encode())[:4], "big")
        return f"{words[h % len(words)]} {h % 97:02d}"

    def account(self, number: str) -> Account:
        raw = self.store.get(f"bank:acct:{number}")
        if raw is None:
            raise errors.InvalidInput("unknown account: choose one of your own accounts")
        d = json.loads(raw)
        return Account(number, d["currency"], Decimal(d["balance"]), tuple(d["history"]))

    def tag(self, kind: str, value: str) -> str:
        """A keyed hash of ``value`` (hex): stable per app, meaningless outside it."""
        return sm3.hmac(self._tag_key, kind.encode() + b":" + value.encode()).hex()[:32]

    # ------------------------------------------------------------------ rate limits
    def rate_ok(self, kind: str, who: str, limit: int, window: float = 60.0) -> bool:
        """Store-backed fixed-window limit: at most ``limit`` hits per ``window`` s."""
        slot = int(self.clock() // window)
        tag = sm3.hmac(self._tag_key, b"rl:" + who.encode()).hex()[:24]  # never the raw value
        return self.store.incr_bounded(f"bank:rl:{kind}:{tag}:{slot}", limit, ttl=window).allowed

    # ------------------------------------------------------------------ policy
    def context(
        self,
        user: str,
        operation: Operation,
        *,
        ip: str,
        device_id: str,
        presented: Sequence[Factor],
        tx: Transaction | None = None,
    ) -> AuthContext:
        status = self.devices.status(user, device_id) if device_id else DeviceStatus.NEW
        cust = self.customer(user)
        common: dict[str, Any] = {
            "customer_type": CustomerType.CORPORATE
            if cust is not None and cust.corporate
            else CustomerType.PERSONAL,
            "ip": ip,
            "device_id": device_id,
            "device_status": status,
            "presented": frozenset(presented),
            "client_type": "browser",
        }
        if tx is not None:
            return AuthContext.for_transaction(tx, user, **common)
        return AuthContext(user=user, operation=operation, **common)

    def decide(self, ctx: AuthContext) -> Decision:
        decision = self.engine.decide(ctx)
        self.audit.record(
            "policy_decision",
            user=ctx.user,
            ip=ctx.ip,
            device=ctx.device_id,
            outcome=decision.outcome.name.lower(),
            rules=decision.fired,
            details={"operation": ctx.operation.value},
        )
        return decision

    def bind_device(
        self, user: str, device_id: str, *, ip: str, presented: Sequence[Factor]
    ) -> bool:
        """Bind the browser's device id after the policy allows it (AU-4)."""
        ctx = self.context(
            user, Operation.BIND_DEVICE, ip=ip, device_id=device_id, presented=presented
        )
        decision = self.decide(ctx)
        if not decision.allowed:
            return False
        self.devices.bind(user, device_id, decision, client_type="browser", ip=ip)
        return True

    def change_password(self, user: str, old: str, new: str) -> None:
        cust = self.customer(user)
        info = PersonalInfo(phone=cust.phone if cust else "", username=user)
        self.passwords.change_password(user, old, new, info)

    @staticmethod
    def needs_only_sms(decision: Decision) -> bool:
        """Every missing clause can be met with an SMS code."""
        return all(Factor.SMS_CODE in clause for clause in decision.missing)

    @staticmethod
    def needs_usbkey(decision: Decision) -> bool:
        """Some missing clause is met by a USB Key confirm-and-sign."""
        return any(Factor.USBKEY_SIGNATURE in clause for clause in decision.missing)

    # ------------------------------------------------------------------ USB Key
    def usbkey_of(self, user: str) -> dict[str, str] | None:
        """The customer's enrolled USB Key: ``serial``, ``certificate`` (PEM), ``fingerprint``."""
        raw = self.store.get(f"bank:usbkey:{user}")
        return None if raw is None else dict(json.loads(raw))

    def enrol_usbkey(
        self, user: str, serial: str, public_key_b64: str, attestation_pem: str, *, ip: str
    ) -> str:
        """Enrol the customer's USB Key transaction key (UK-10): the token's key attestation must
        verify up to a trusted manufacturer and state an on-token, non-exportable key whose use
        needs display + button; the bank CA then certifies that key for this customer and the
        serial <-> certificate <-> customer binding is recorded.  Returns the certificate (PEM).
        Raises a typed error (nothing stored) otherwise."""
        if self.token_trust is None:
            raise errors.ConfigurationError(
                "this bank app trusts no token manufacturer, so it cannot enrol a USB Key: "
                "start it with --token-root FILE (or --emulator-token DIR for the demo token)"
            )
        if self.usbkey_of(user) is not None:
            raise errors.AccessDenied(
                "a USB Key is already bound to this customer: ask the bank to unbind it first"
            )
        chain = attestation_pem.encode("ascii", "replace")
        attested = verify_key_attestation(chain, self.token_trust)
        if not attested.is_transaction_key:
            raise errors.AccessDenied(
                "the token's key is not a transaction key (generated on the token, not "
                "exportable, display and button enforced): it cannot confirm transfers"
            )
        if not hmac.compare_digest(attested.token_serial.encode(), serial.encode()):
            raise errors.AccessDenied("the attestation names another token than the one enrolled")
        try:
            sent = base64.b64decode(public_key_b64, validate=True)
        except ValueError:
            raise errors.InvalidInput("the public key must be base64 DER") from None
        if not hmac.compare_digest(sent, attested.public_key_der):
            raise errors.AccessDenied("the public key sent is not the key the token attested")
        cust = self.customer(user)
        subject = f"CN={user},OU={serial},O=Demo Bank customers"
        cert = self.ca.issue(
            subject,
            sm2.load_der_public_key(attested.public_key_der),
            valid_days=730,
        )
        self.credentials.enrol_token_key(
            user, cert.to_der(), chain, self.token_trust, source=self.confirmations.source
        )
        record = {
            "serial": serial,
            "certificate": cert.to_pem().decode(),
            "fingerprint": cert.fingerprint("sm3"),
            "name": cust.name if cust else user,
        }
        if not self.store.put_if_absent(f"bank:usbkey:{user}", json.dumps(record).encode()):
            self.credentials.unbind(cert.fingerprint("sm3"))
            raise errors.AccessDenied("a USB Key was bound to this customer meanwhile")
        self.audit.record(
            "usbkey_enrolled", user=user, ip=ip, outcome="ok", details={"serial": serial}
        )
        return record["certificate"]

    def unbind_usbkey(self, user: str, *, staff: str, ip: str) -> bool:
        rec = self.usbkey_of(user)
        if rec is None:
            return False
        self.credentials.unbind(rec["fingerprint"])
        self.store.delete(f"bank:usbkey:{user}")
        self.audit.record(
            "usbkey_unbound", user=user, ip=ip, outcome="ok", details={"staff": staff}
        )
        return True

    def verify_signed_transfer(
        self, user: str, tx: Transaction, signature_b64: str, signed_b64: str, serial: str
    ) -> None:
        """Check a confirm-and-sign result for the transfer this server recorded: the signed
        bytes are exactly the canonical bytes of ``tx`` (what the token showed), the signature
        verifies under the customer's certified key, the serial is the enrolled token's
        (UK-10), and the transaction id was never confirmed before (AU-8; registered here)."""
        rec = self.usbkey_of(user)
        if rec is None:
            raise errors.AccessDenied("no USB Key is bound to this customer")
        try:
            signature = base64.b64decode(signature_b64, validate=True)
            signed = base64.b64decode(signed_b64, validate=True)
        except ValueError:
            raise errors.InvalidSignature("the signature and signed bytes must be base64") from None
        if not hmac.compare_digest(signed, tx.encode()):
            raise errors.InvalidSignature(
                "the token signed other bytes than this transfer: nothing is booked"
            )
        if not hmac.compare_digest(serial.encode(), rec["serial"].encode()):
            raise errors.AccessDenied("the transfer was signed by another token than the bound one")
        self.confirmations.verify(
            tx,
            signature,
            rec["certificate"].encode(),
            customer=user,
            kind=SignerKind.USBKEY,
        )

    # ------------------------------------------------------------------ phone shield
    def _init_phone_shield(
        self,
        roots: Sequence[bytes],
        url: str | None,
        limits: Mapping[str, str] | None,
    ) -> None:
        """The bank's half of the phone shield (two-party SM2 key, attested phone) over the
        app's store: shares sealed with the app's SM4 key, certificates by the bank CA, the
        CSR envelope opened with the bank's enrolment encryption key.  Phones are trusted by
        their key attestation: Google's hardware roots unless test roots are given (demo:
        the software phone's)."""
        self._phone_sealer = SecretSealer({1: _key_file(self.state / "phone-seal.key", 16)})
        self._phone_mac = _key_file(self.state / "phone-mac.key", 32)
        self._phone_enrol_key = _sm2_key(self.state / "phone-enrol.key")
        cert_path = self.state / "phone-enrol.pem"
        if not cert_path.exists():
            cert = self.ca.issue(
                "CN=Demo Bank Phone Shield Enrolment,O=Demo Bank",
                self._phone_enrol_key.public_key(),
                key_usage={x509.KeyUsage.KEY_ENCIPHERMENT},
                valid_days=3650,
            )
            _publish_once(cert_path, cert.to_pem())
        self._phone_enrol_cert = x509.load_certificate(cert_path.read_bytes())
        self._phone_trust = (
            AttestationTrust.from_roots(roots) if roots else AttestationTrust.google()
        )
        self._phone_identity = PasswordAndSmsIdentity(self.codes, self._check_password)
        self.phone_url = url.rstrip("/") if url else None
        self.phone_daily_limits = {
            k: Decimal(v) for k, v in (limits if limits is not None else PHONE_DAILY_LIMITS).items()
        }
        self.phone_shield = self.phone_server(self.phone_url or "http://localhost")
        self.phone_api = PhoneShieldApi(self.phone_shield)

    def phone_server(self, url: str) -> PhoneShieldServer:
        """The phone-shield server whose enrolment links name the bank's URL: the configured
        one (``--public-url``), else ``url`` (the request's) -- which the demo accepts only on
        loopback, since a client chooses the ``Host`` it sends.  All share the store."""
        if self.phone_url is not None:
            url = self.phone_url
        else:
            host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "localhost", "[::1]"):
                raise errors.ConfigurationError(
                    "the phone shield needs the bank's public URL for the enrolment link: start "
                    "the app with --public-url https://bank.example"
                )
        return PhoneShieldServer(
            self.store,
            sealer=self._phone_sealer,
            mac_key=self._phone_mac,
            ca=self.ca,
            enrolment_key=self._phone_enrol_key,
            enrolment_certificate=self._phone_enrol_cert,
            attestation_policy=AttestationPolicy(PHONE_APP_PACKAGE, PHONE_APP_SIGNING_DIGESTS),
            attestation_trust=self._phone_trust,
            identity=self._phone_identity,
            server_url=url.rstrip("/"),
            authorisation_sender=self._send_authorisation_code,
        )

    def _check_password(self, user: str, password: str) -> None:
        """The identity step's password: the login password, with the login lockout."""
        result = self.lockout.password_login(self.passwords, user, password)
        if not result.success:
            raise errors.PasswordIncorrect("the login password is wrong")

    def _send_authorisation_code(self, user: str, code: str) -> None:
        """The enrolment's authorisation code goes by SMS (the second channel), never on the
        page that shows the link and the reference code."""
        phone = self.phones.registered_phone(user)
        if not phone:
            raise errors.ConfigurationError("the customer has no registered phone number")
        self.outbox.send(
            OutboundMessage(
                message_id=secrets.token_hex(8),
                channel=DeliveryChannel.SMS,
                phone=phone,
                text=f"【{BANK_NAME}】手机盾授权码 {code}，请在手机银行中输入以完成手机盾开通。"
                "请勿告诉任何人。Phone shield authorisation code.",
                lang="zh",
                purpose="phone-shield-authorisation",
                created_at=self.clock(),
            )
        )

    def phone_shield_of(self, user: str) -> dict[str, Any] | None:
        """The customer's phone shield (not revoked) for the settings page: device id, state,
        hardware level from the attestation, failures, daily limit and what is used today."""
        device_id = self.phone_shield.device_for(user)
        if device_id is None:
            return None
        status = self.phone_shield.status(device_id)
        if status.state is DeviceState.REVOKED:
            return None
        limit = self.phone_daily_limit(status.security_level)
        return {
            "device_id": device_id,
            "short": device_id[:8] + "…",
            "state": status.state.value,
            "active": status.state is DeviceState.ACTIVE,
            "level": status.security_level,
            "failures": status.failures,
            "max_failures": status.limit,
            "serial": format(status.certificate_serial, "x"),
            "identity": status.identity_method,
            "enrolled": datetime.fromtimestamp(status.enrolled_at).isoformat(timespec="minutes"),
            "daily_limit": f"{limit:.2f}",
            "used_today": f"{self._phone_used(device_id):.2f}",
        }

    def phone_enrol_start(self, user: str) -> tuple[str, str]:
        """Open an enrolment and send the identity step's SMS code: (enrolment id, masked
        phone).  The certificate subject is the bank's choice, never the phone's."""
        start = self.phone_shield.start_enrolment(
            user, f"CN={user},OU=phone shield,O=Demo Bank customers"
        )
        issued = self._phone_identity.send_code(user)
        return start.enrolment_id, issued.phone_masked

    def phone_enrol_identity(
        self, user: str, enrolment_id: str, password: str, code: str, url: str
    ) -> dict[str, str]:
        """The identity step (password + SMS code, PS-5): the link for the phone, its QR code
        (an SVG ``data:`` URI) and the reference code for this page; the authorisation code
        goes by SMS."""
        codes = self.phone_server(url).confirm_identity(
            enrolment_id, PasswordAndSmsCode(password, code)
        )
        self.audit.record(
            "phone_shield_identity", user=user, outcome="ok", details={"enrolment": enrolment_id}
        )
        qr = base64.b64encode(qr_svg(codes.link).encode("utf-8")).decode("ascii")
        return {
            "link": codes.link,
            "qr": "data:image/svg+xml;base64," + qr,
            "reference": codes.reference_code,
        }

    def phone_api_call(
        self, method: str, path: str, body: bytes, *, ip: str
    ) -> tuple[int, dict[str, Any]]:
        """One request of the phone's HTTP contract; the app records what it changes (a
        finished enrolment binds the certificate to the customer; a revocation from the
        phone unbinds it) with audit events."""
        status, doc = self.phone_api.handle(method, path, body)
        if status != 200:
            return status, doc
        parts = path.split("?")[0].split("/")
        if method == "POST" and parts[-1] == "finish" and isinstance(doc.get("device_id"), str):
            self._phone_enrolled(doc["device_id"], ip=ip)
        elif method == "POST" and parts[-1] == "revoke" and len(parts) >= 2:
            self._phone_revoked(parts[-2], ip=ip, by="phone")
        return status, doc

    def _phone_enrolled(self, device_id: str, *, ip: str) -> None:
        status = self.phone_shield.status(device_id)
        user = status.customer_id
        cert = self.phone_shield.certificate(device_id)
        previous = self.store.get(f"bank:phone:{user}")
        if previous is not None:  # the server revoked the replaced phone in the same step
            old = json.loads(previous)
            self.credentials.unbind(old["fingerprint"])
            self.audit.record(
                "phone_shield_revoked",
                user=user,
                ip=ip,
                outcome="ok",
                details={"device": old["device_id"][:8], "by": "replaced"},
            )
        fingerprint = cert.fingerprint("sm3")
        self.credentials.bind(user, SignerKind.PHONE_SHIELD, device_id, fingerprint)
        record = {"device_id": device_id, "fingerprint": fingerprint}
        self.store.compare_and_set(f"bank:phone:{user}", previous, json.dumps(record).encode())
        self.audit.record(
            "phone_shield_enrolled",
            user=user,
            ip=ip,
            outcome="ok",
            details={
                "device": device_id[:8],
                "level": status.security_level,
                "serial": format(cert.serial_number, "x"),
            },
        )

    def _phone_revoked(self, device_id: str, *, ip: str, by: str) -> None:
        status = self.phone_shield.status(device_id)
        user = status.customer_id
        raw = self.store.get(f"bank:phone:{user}")
        if raw is None or json.loads(raw)["device_id"] != device_id:
            return
        self.credentials.unbind(json.loads(raw)["fingerprint"])
        self.store.compare_and_set(f"bank:phone:{user}", raw, None)
        self.audit.record(
            "phone_shield_revoked",
            user=user,
            ip=ip,
            outcome="ok",
            details={"device": device_id[:8], "by": by},
        )

    def revoke_phone_shield(self, user: str, *, ip: str, by: str) -> bool:
        """Revoke the customer's phone shield (settings page or back office): the server
        share is deleted at once (no signature can complete, not even in an open session),
        the certificate listed for the CRL, the credential unbound."""
        device_id = self.phone_shield.device_for(user)
        if device_id is None or self.phone_shield.status(device_id).state is DeviceState.REVOKED:
            return False
        self.phone_shield.revoke(device_id, reason=f"revoked by {by}")
        self._phone_revoked(device_id, ip=ip, by=by)
        return True

    def phone_shield_list(self) -> list[dict[str, Any]]:
        """Every customer's enrolled phone shield (back office)."""
        rows = []
        for user in self.customer_names():
            rec = self.phone_shield_of(user)
            if rec is not None:
                rows.append({"user": user, **rec})
        return rows

    @staticmethod
    def phone_meets(decision: Decision) -> bool:
        """Every missing clause of a step-up can be met with a phone-shield signature."""
        return bool(decision.missing) and all(
            Factor.PHONE_SHIELD_SIGNATURE in clause for clause in decision.missing
        )

    # daily limit: the sum of phone-confirmed amounts per phone shield and day (Beijing
    # time), one counter in the store changed only by compare-and-set
    def phone_daily_limit(self, level: str) -> Decimal:
        return self.phone_daily_limits.get(level, Decimal(0))

    def _phone_day_key(self, device_id: str) -> str:
        day = datetime.fromtimestamp(self.clock(), _BEIJING).date().isoformat()
        return f"bank:phonelimit:{device_id}:{day}"

    def _phone_used(self, device_id: str) -> Decimal:
        raw = self.store.get(self._phone_day_key(device_id))
        return Decimal(raw.decode()) if raw is not None else Decimal(0)

    def _phone_limit_change(self, device_id: str, level: str, delta: Decimal) -> None:
        """Add ``delta`` to today's phone-confirmed sum, refused above the daily limit."""
        key = self._phone_day_key(device_id)
        limit = self.phone_daily_limit(level)
        for _ in range(20):
            raw = self.store.get(key)
            used = Decimal(raw.decode()) if raw is not None else Decimal(0)
            new = max(used + delta, Decimal(0))
            if delta > 0 and new > limit:
                raise errors.AccessDenied(
                    f"this transfer would take the phone shield's confirmations today to "
                    f"{new:.2f} CNY, above its daily limit of {limit:.2f} CNY: confirm it "
                    "with a USB Key or try again tomorrow"
                )
            if self.store.compare_and_set(key, raw, f"{new:.2f}".encode(), ttl=2 * 86400):
                return
        raise errors.ConflictError("the phone shield's daily limit is busy: try again")

    def phone_ready(self, user: str) -> dict[str, Any] | None:
        """The customer's phone shield if it can confirm now (enrolled, not locked)."""
        rec = self.phone_shield_of(user)
        return rec if rec is not None and rec["active"] else None

    def phone_confirm_begin(self, user: str, tx: Transaction) -> str:
        """Record ``tx`` with the phone-shield server and open the signing session the phone
        fetches (the server derives what is signed from this transaction).  Refused when the
        amount does not fit in today's daily limit.  Returns the session id."""
        rec = self.phone_ready(user)
        if rec is None:
            raise errors.DeviceRevoked()
        limit = Decimal(rec["daily_limit"])
        if self._phone_used(rec["device_id"]) + tx.amount > limit:
            raise errors.AccessDenied(
                f"the phone shield confirms at most {limit:.2f} CNY a day "
                f"({rec['used_today']} used today): confirm this transfer with a USB Key"
            )
        session = self.phone_shield.begin_signing(rec["device_id"], tx)
        self.audit.record(
            "phone_shield_confirmation_sent",
            user=user,
            outcome="ok",
            tx=tx,
            details={"device": rec["device_id"][:8]},
        )
        return session.session_id

    def phone_confirm_poll(self, user: str, session_id: str, tx: Transaction) -> Transaction | None:
        """The phone's answer for the transfer this server recorded: None while the phone
        has not signed; the recorded transaction once its joint signature verified (credential,
        certificate chain, replay cache -- registered here, audited) and its amount fits in the
        daily limit (reserved atomically).  Raises SigningRefused (rejected on the phone,
        failed, expired), InvalidSignature, DuplicateTransaction or AccessDenied (limit)."""
        result = self.phone_shield.signing_result(session_id)
        if result.status in (SessionStatus.PENDING, SessionStatus.ANSWERED):
            return None
        recorded = result.transaction
        if not hmac.compare_digest(recorded.encode(), tx.encode()) or result.signature is None:
            raise errors.InvalidSignature("the phone signed another transaction than this one")
        device_id = self.phone_shield.device_for(user)
        status = self.phone_shield.status(device_id) if device_id else None
        if status is None or status.customer_id != user:
            raise errors.DeviceRevoked()
        self.confirmations.verify(
            recorded,
            result.signature,
            result.certificate.to_der(),
            customer=user,
            kind=SignerKind.PHONE_SHIELD,
        )
        try:
            self._phone_limit_change(device_id or "", status.security_level, recorded.amount)
        except errors.AccessDenied:
            self.audit.record("phone_shield_limit_refused", user=user, outcome="deny", tx=recorded)
            raise
        return recorded

    def phone_limit_release(self, user: str, tx: Transaction) -> None:
        """A phone-confirmed transfer was not booked after all: give its amount back."""
        rec = self.phone_shield_of(user)
        if rec is not None:
            self._phone_limit_change(rec["device_id"], rec["level"], -tx.amount)

    # ------------------------------------------------------------------ passkeys
    def passkey_origin(self, scheme: str, host: str, server_port: str) -> str | None:
        """The WebAuthn origin of a request, or None when passkeys cannot be offered there.

        Configured (``--rp-id``/``--origin``): the configured RP is used whatever the request
        says, so a response made on any other origin is refused by the library.  Demo default
        (nothing configured): the origin is taken from the request, but only for ``localhost``
        on the port this server really listens on (``SERVER_PORT`` of the socket, which a
        client cannot choose) -- browsers refuse an IP address such as 127.0.0.1 as an RP ID,
        and another local site relaying a sign-in names its own port in ``Host``."""
        if self._passkey_rp is not None:
            return f"{scheme}://{host}"
        name, _, port = host.partition(":")
        default = {"http": "80", "https": "443"}.get(scheme)
        if name != "localhost" or default is None or (port or default) != server_port:
            return None
        return f"{scheme}://{host}"

    def _passkey_server(self, origin: str) -> Any:
        """python-fido2 behind ebank_auth.webauthn, built once per relying party."""
        rp = self._passkey_rp
        if rp is None:
            rp = RelyingParty(id="localhost", name=BANK_NAME, origins=(origin,))
        with self._passkey_lock:
            server = self._passkey_servers.get(rp.origins[0] if self._passkey_rp else origin)
            if server is None:
                from ebank_auth.webauthn import PasskeyServer  # needs the webauthn extra

                server = PasskeyServer(
                    self.store,
                    rp,
                    user_verification=UserVerification.PREFERRED,
                    audit=self.audit,
                    lockout=self.lockout,  # a locked customer's passkey is refused
                    on_clone=self._passkey_clone,
                )
                self._passkey_servers[rp.origins[0] if self._passkey_rp else origin] = server
            return server

    def _passkey_clone(self, event: Any) -> None:
        """A passkey's signature counter went back (the library blocked it and audited
        ``passkey_clone_suspected``): tell the customer at once, like a lockout notice."""
        phone = self.phones.registered_phone(event.user)
        if not phone:
            return
        self.outbox.send(
            OutboundMessage(
                message_id=secrets.token_hex(8),
                channel=DeliveryChannel.SMS,
                phone=phone,
                text=f"【{BANK_NAME}】您的一个通行密钥（passkey）疑似被复制，已停用。"
                "如非本人操作，请立即联系本行。",
                lang="zh",
                purpose="passkey-clone",
                created_at=self.clock(),
            )
        )

    def passkeys(self, user: str) -> list[dict[str, Any]]:
        """The customer's passkeys for the settings page (no key material)."""
        rows = []
        for c in self.passkey_registry.credentials(user):
            rows.append(
                {
                    "id": c.id,
                    "short": c.id[:12] + "…",
                    "created": datetime.fromtimestamp(c.created_at).isoformat(timespec="minutes"),
                    "last_used": ""
                    if c.last_used_at is None
                    else datetime.fromtimestamp(c.last_used_at).isoformat(timespec="minutes"),
                    "aaguid": c.aaguid_text,
                    "transports": ", ".join(c.transports),
                    "uv": c.user_verified,
                    "synced": c.backup_eligible,
                    "blocked": c.clone_suspected,
                    "sign_count": c.sign_count,
                }
            )
        return rows

    def has_passkeys(self, user: str) -> bool:
        """The customer has a passkey that is not blocked."""
        return any(not c.clone_suspected for c in self.passkey_registry.credentials(user))

    def remove_passkey(self, user: str, credential_id: str, *, ip: str) -> bool:
        for c in self.passkey_registry.credentials(user):
            if hmac.compare_digest(c.id, credential_id) and self.passkey_registry.remove(
                user, c.credential_id
            ):
                self.audit.record(
                    "passkey_removed", user=user, ip=ip, outcome="ok", details={"credential": c.id}
                )
                return True
        return False

    def passkey_register_begin(self, user: str, origin: str) -> tuple[str, dict[str, Any]]:
        """(handle for the server-side session, creation options for the page)."""
        ceremony = self._passkey_server(origin).register_begin(user, name=user)
        return ceremony.handle, ceremony.options

    def passkey_register_complete(
        self, user: str, origin: str, handle: str, response: Mapping[str, Any]
    ) -> str:
        """Verify and store the new passkey; its id.  Raises a typed WebAuthnError."""
        cred = self._passkey_server(origin).register_complete(handle, response)
        if cred.user != user:  # the handle came from this session: cannot happen
            self.passkey_registry.remove(cred.user, cred.credential_id)
            raise errors.CeremonyInvalid()
        return str(cred.id)

    def passkey_login_begin(
        self, origin: str, user: str | None, level: UserVerification
    ) -> tuple[str, dict[str, Any]]:
        """Start a sign-in: the customer's passkeys (``user``) or any discoverable one
        (``None``: usernameless)."""
        ceremony = self._passkey_server(origin).authenticate_begin(user, user_verification=level)
        return ceremony.handle, ceremony.options

    def passkey_login_complete(
        self, origin: str, handle: str, response: Mapping[str, Any]
    ) -> tuple[str, Factor]:
        """(customer, ``passkey`` or ``passkey_uv``).  Raises CeremonyInvalid, PasskeyRejected
        (PasskeyCloneSuspected: the passkey is now blocked) or AccountLocked.  Never counted
        toward, nor resetting, the password lockout."""
        result = self._passkey_server(origin).authenticate_complete(handle, response)
        return str(result.user), result.factor

    @staticmethod
    def passkey_meets(decision: Decision) -> bool:
        """Every missing clause of a step-up can be met with a passkey."""
        return bool(decision.missing) and all(
            clause & PASSKEY_FACTORS for clause in decision.missing
        )

    @staticmethod
    def passkey_level(decision: Decision) -> UserVerification:
        """REQUIRED when the policy takes only a user-verified passkey (``passkey_uv``)."""
        return user_verification_for(decision.missing)

    def usernameless_allowed(self) -> bool:
        """Usernameless sign-in is offered only when the app enables it AND the policy's
        login requirement counts a passkey as a factor (the password still follows: the
        baseline never lets a passkey alone sign in)."""
        if not self.passkey_usernameless:
            return False
        rule = self.engine.policy.operations.get(Operation.LOGIN)
        return rule is not None and any(
            clause & PASSKEY_FACTORS for clause in rule.requirement.clauses
        )

    # ------------------------------------------------------------------ staff
    def register_staff_key(self, staff: str, public_key_pem: bytes) -> None:
        """The staff member's hardware login key (the token's LOGIN container)."""
        key = sm2.load_pem_public_key(public_key_pem)
        name = f"bank:staffkey:{staff}"
        if not self.store.compare_and_set(name, self.store.get(name), key.to_der()):
            raise errors.ConflictError("the staff key changed meanwhile: start the app again")

    def staff_challenge(self) -> str:
        return secrets.token_hex(32)

    def verify_staff_login(
        self, staff: str, origin: str, challenge_hex: str, signature_b64: str
    ) -> None:
        """The staff member's USB Key signed the agent's login message for THIS origin and
        challenge with the registered login key (raises InvalidSignature / AccessDenied)."""
        der = self.store.get(f"bank:staffkey:{staff}")
        if der is None:
            raise errors.AccessDenied("no hardware login key is registered for this staff member")
        self._verify_login_message(
            sm2.load_der_public_key(der), origin, challenge_hex, signature_b64
        )

    def customer_names(self) -> list[str]:
        return [c["username"] for c in DEMO_CUSTOMERS]

    def lockouts(self) -> list[dict[str, Any]]:
        """Each customer's login failure count and lock (back office)."""
        rows = []
        for user in self.customer_names():
            st = self.lockout.status(user)
            until = st.locked_until.isoformat(timespec="minutes") if st.locked_until else ""
            rows.append(
                {"user": user, "failures": st.failures, "locked": st.locked, "until": until}
            )
        return rows

    def device_list(self) -> list[dict[str, Any]]:
        """Every customer's bound devices (back office; ids shortened)."""
        rows = []
        for user in self.customer_names():
            for rec in self.devices.devices(user):
                rows.append(
                    {
                        "user": user,
                        "device": rec.device_id[:8] + "…",
                        "bound": datetime.fromtimestamp(rec.bound_at).isoformat(timespec="minutes"),
                        "trusted": rec.trusted_at is not None,
                    }
                )
        return rows

    def usbkey_list(self) -> list[dict[str, str]]:
        rows = []
        for user in self.customer_names():
            rec = self.usbkey_of(user)
            if rec is not None:
                rows.append({"user": user, "serial": rec["serial"], "fp": rec["fingerprint"][:16]})
        return rows

    # ------------------------------------------------------------------ soft keyboard
    def keyboard_session(self) -> dict[str, object]:
        """A fresh soft-keyboard layout as the page receives it: session id, key ids,
        the layout SVG, the server's SM2 public key (DER, hex) and the commit key."""
        return self.keyboard.open(KeyboardMode.ALPHANUMERIC).client_view()

    def keyboard_switch(self, session_id: str) -> dict[str, object]:
        """The customer switched to the system keyboard: the soft session ends and the
        view of the SYSTEM session that replaces it is returned (flagged to policy when
        submitted: :meth:`keyboard_password` gives a plain :class:`Factor.PASSWORD`)."""
        return self.keyboard.switch_to_system(session_id).client_view()

    def keyboard_password(
        self, session_id: str, keystrokes_hex: Sequence[str], commitment_hex: str
    ) -> tuple[bytearray, Factor]:
        """Decode soft-keyboard keystrokes; the factor says which keyboard was used."""
        try:
            strokes = [bytes.fromhex(k) for k in keystrokes_hex]
            commitment = bytes.fromhex(commitment_hex)
        except ValueError:
            raise errors.SoftKeyboardError(
                "the keystrokes must be hex ciphertexts: type the password again"
            ) from None
        decoded = self.keyboard.submit(session_id, strokes, commitment=commitment)
        factor = Factor.PASSWORD if decoded.system_keyboard else Factor.SOFT_KEYBOARD_PASSWORD
        return decoded.value, factor

    # ------------------------------------------------------------------ transfers
    def new_transfer(
        self, payer: str, payee_account: str, payee_name: str, amount: str, memo: str
    ) -> Transaction:
        try:
            value = Decimal(amount.strip())
        except (InvalidOperation, AttributeError):
            raise errors.InvalidTransaction("the amount must be a number such as 100.00") from None
        return Transaction(
            tx_id=new_tx_id(),
            tx_type="transfer",
            payer_account=payer,
            payee_account=payee_account.strip(),
            payee_name=payee_name.strip(),
            amount=value,
            currency="CNY",
            timestamp=datetime.fromtimestamp(self.clock()).astimezone(),
            memo=memo.strip(),
        )

    def book(self, user: str, tx: Transaction, *, ip: str) -> None:
        """Debit the payer once (atomic compare-and-set of the account record, which
        also remembers the transaction id: a second booking of the same id is refused
        even if the replay cache entry has expired), audited before and after.

        Write-ahead audit: ``transfer_booking`` is durable *before* the money moves, so a worker
        killed between the debit and ``transfer_booked`` never leaves a booking without an audit
        record (the intent plus the account's transaction ids say what happened); an intent
        without a booking is a transfer that did not happen."""
        key = f"bank:acct:{tx.payer_account}"
        self.audit.record("transfer_booking", user=user, ip=ip, outcome="intent", tx=tx)
        for _ in range(20):
            raw = self.store.get(key)
            if raw is None:
                raise errors.InvalidInput("unknown account: choose one of your own accounts")
            d = json.loads(raw)
            if tx.tx_id in d["tx_ids"]:
                raise errors.DuplicateTransaction(
                    f"transaction {tx.tx_id} was already booked and is refused as a duplicate"
                )
            balance = Decimal(d["balance"])
            if tx.amount > balance:
                raise errors.AccessDenied("insufficient funds: enter a smaller amount")
            d["balance"] = str(balance - tx.amount)
            d["tx_ids"].append(tx.tx_id)
            d["history"].insert(
                0,
                {
                    "tx_id": tx.tx_id,
                    "time": tx.timestamp.isoformat(timespec="seconds"),
                    "payee_account": tx.payee_account,
                    "payee_name": tx.payee_name,
                    "amount": f"-{tx.amount}",
                    "memo": tx.memo,
                },
            )
            if self.store.compare_and_set(key, raw, json.dumps(d).encode()):
                self.audit.record("transfer_booked", user=user, ip=ip, outcome="ok", tx=tx)
                return
        raise errors.ConflictError("the account is busy: submit the transfer again")

    @staticmethod
    def tx_json(tx: Transaction) -> str:
        return json.dumps(tx.to_dict())

    @staticmethod
    def tx_from_json(raw: str) -> Transaction:
        return Transaction.from_dict(json.loads(raw))

    @staticmethod
    def mask_phone(phone: str) -> str:
        return mask_phone(phone)

    # ------------------------------------------------------------------ login step-ups
    # (TOTP, USB Key login signature, trusted devices: AU-1, AU-4, AU-7; see stepups.py)
    #: the step-up factors the login page can offer, in the order shown
    LOGIN_CHOICES = (Factor.SMS_CODE, Factor.TOTP, Factor.USBKEY_SIGNATURE)

    def login_choices(self, user: str, decision: Decision) -> list[Factor]:
        """The factors that meet EVERY missing clause of a login step-up and that this
        customer can present: an SMS code always, TOTP once an authenticator is confirmed,
        a USB Key login signature once the token's login key is registered."""
        if not decision.missing:
            return []
        usable = {
            Factor.SMS_CODE: True,
            Factor.TOTP: self.totp_enabled(user),
            Factor.USBKEY_SIGNATURE: self.login_key_of(user) is not None,
        }
        return [
            f
            for f in self.LOGIN_CHOICES
            if usable[f] and all(f in clause for clause in decision.missing)
        ]

    # TOTP authenticator app -------------------------------------------------------
    def totp(self) -> AuthenticatorService:
        """The customers' TOTP authenticators (secrets sealed with SM4 at rest)."""
        service: AuthenticatorService | None = getattr(self, "_totp_service", None)
        if service is None:
            sealer = SecretSealer({1: _key_file(self.state / "totp-seal.key", 16)})
            service = AuthenticatorService(
                self.store,
                sealer,
                AuthenticatorSettings(issuer=BANK_NAME),
                namespace="banktotp",
            )
            self._totp_service = service
        return service

    def totp_enabled(self, user: str) -> bool:
        return self.store.get(f"bank:totp-on:{user}") is not None

    def totp_begin(self, user: str) -> tuple[str, str]:
        """Start (or restart) enrolling an authenticator app: a fresh secret, not usable at
        login until :meth:`totp_confirm` accepts a first code.  Returns the ``otpauth://``
        URI and its QR code as a ``data:image/svg+xml`` URL."""
        if self.totp_enabled(user):
            raise errors.ConflictError(
                "an authenticator app is already set up: remove it first to set up another"
            )
        enrolment = self.totp().enroll(user, user, replace=True)
        svg = enrolment.qr_svg().encode("utf-8")
        return enrolment.uri, "data:image/svg+xml;base64," + base64.b64encode(svg).decode()

    def totp_confirm(self, user: str, code: str, *, ip: str) -> None:
        """The first code from the app: it is accepted once (the library's replay check), then
        the authenticator counts at login.  Raises OtpError (CodeInvalid, ReplayDetected...)."""
        self.totp().verify(user, code)
        self.store.put_if_absent(f"bank:totp-on:{user}", b"1")
        self.audit.record("totp_enrolled", user=user, ip=ip, outcome="ok")

    def totp_verify(self, user: str, code: str) -> None:
        """A login code from the confirmed authenticator (accepted once; raises OtpError)."""
        if not self.totp_enabled(user):
            raise errors.OtpError("no authenticator app is set up: choose another way")
        self.totp().verify(user, code)

    def totp_remove(self, user: str, *, ip: str) -> None:
        self.store.delete(f"bank:totp-on:{user}")
        self.totp().unenroll(user)
        self.audit.record("totp_removed", user=user, ip=ip, outcome="ok")

    # USB Key login signature --------------------------------------------------------
    @staticmethod
    def login_challenge() -> str:
        return secrets.token_hex(32)

    def login_key_of(self, user: str) -> bytes | None:
        """The DER public key of the customer's USB Key LOGIN container, once registered."""
        return self.store.get(f"bank:loginkey:{user}")

    @staticmethod
    def _verify_login_message(
        key: sm2.SM2PublicKey, origin: str, challenge_hex: str, signature_b64: str
    ) -> None:
        """``key`` signed the agent's login message (:func:`ebank_auth.agent.login_message`)
        for THIS origin and challenge; raises InvalidSignature otherwise."""
        try:
            signature = base64.b64decode(signature_b64, validate=True)
            challenge = bytes.fromhex(challenge_hex)
        except ValueError:
            raise errors.InvalidSignature("the signature must be base64") from None
        key.verify(signature, login_message(origin, challenge))

    def _bound_serial(self, user: str, serial: str) -> None:
        rec = self.usbkey_of(user)
        if rec is None:
            raise errors.AccessDenied("bind a USB Key first (USB Key page)")
        if not hmac.compare_digest(serial.encode(), rec["serial"].encode()):
            raise errors.AccessDenied("this is another token than the USB Key bound to you")

    def register_login_key(
        self,
        user: str,
        origin: str,
        challenge_hex: str,
        signature_b64: str,
        public_key_b64: str,
        serial: str,
        *,
        ip: str,
    ) -> None:
        """Record the bound token's login key: the agent's ``/v1/authenticate`` answer over a
        fresh challenge for THIS origin must verify under the key it reports, and the serial
        must be the bound token's.  Raises InvalidSignature / AccessDenied (nothing stored)."""
        self._bound_serial(user, serial)
        try:
            der = base64.b64decode(public_key_b64, validate=True)
            key = sm2.load_der_public_key(der)
        except (ValueError, EbankAuthError):
            raise errors.InvalidInput("the login key must be base64 DER (SM2)") from None
        self._verify_login_message(key, origin, challenge_hex, signature_b64)
        name = f"bank:loginkey:{user}"
        if not self.store.compare_and_set(name, self.store.get(name), key.to_der()):
            raise errors.ConflictError("the login key changed meanwhile: register it again")
        self.audit.record(
            "usbkey_login_key_registered",
            user=user,
            ip=ip,
            outcome="ok",
            details={"serial": serial},
        )

    def verify_login_signature(
        self, user: str, origin: str, challenge_hex: str, signature_b64: str
    ) -> None:
        """The customer's USB Key signed the agent's login message for THIS origin and
        challenge with the registered login key, as :meth:`verify_staff_login` does for staff
        (raises InvalidSignature / AccessDenied)."""
        der = self.login_key_of(user)
        if der is None or self.usbkey_of(user) is None:
            raise errors.AccessDenied("no USB Key login key is registered for this customer")
        self._verify_login_message(
            sm2.load_der_public_key(der), origin, challenge_hex, signature_b64
        )

    # trusted devices (AU-7) -----------------------------------------------------------
    def device_handle(self, device_id: str) -> str:
        """What a page shows and posts for a device: never the device id (the cookie)."""
        return self.tag("device-handle", device_id)[:16]

    def my_devices(self, user: str, current: str) -> list[dict[str, Any]]:
        """The customer's bound devices for the settings page (handles, never ids)."""
        trusted = {d.device_id for d in self.devices.trusted(user)}
        rows = []
        for rec in self.devices.devices(user):
            rows.append(
                {
                    "handle": self.device_handle(rec.device_id),
                    "current": hmac.compare_digest(rec.device_id, current),
                    "bound": datetime.fromtimestamp(rec.bound_at).isoformat(timespec="minutes"),
                    "last_login": ""
                    if rec.last_login is None
                    else datetime.fromtimestamp(rec.last_login).isoformat(timespec="minutes"),
                    "trusted": rec.device_id in trusted,
                    "ip": rec.history[-1].ip if rec.history else "",
                }
            )
        return rows

    def trust_device(
        self, user: str, device_id: str, *, ip: str, presented: Sequence[Factor]
    ) -> None:
        """Trust this bound device after an allowed ``trust_device`` decision (the password of
        this login plus a fresh USB Key login signature).  A 4th trusted device is refused
        here: the customer chooses which one to revoke (the library would otherwise evict the
        trusted device used least recently; it never keeps more than 3)."""
        if self.devices.status(user, device_id) is DeviceStatus.NEW:
            raise errors.AccessDenied(
                "this device is not bound yet: sign in with an SMS code first"
            )
        others = [d for d in self.devices.trusted(user) if d.device_id != device_id]
        if len(others) >= self.devices.max_trusted:
            raise errors.AccessDenied(
                f"you already trust {self.devices.max_trusted} devices (the most allowed): "
                "revoke one of them first"
            )
        ctx = self.context(
            user, Operation.TRUST_DEVICE, ip=ip, device_id=device_id, presented=presented
        )
        decision = self.decide(ctx)
        if not decision.allowed:
            raise errors.AccessDenied("; ".join(decision.reasons) or "trusting needs the USB Key")
        self.devices.trust(user, device_id, decision)

    def revoke_device_trust(self, user: str, handle: str) -> bool:
        for rec in self.devices.trusted(user):
            if hmac.compare_digest(self.device_handle(rec.device_id), handle):
                self.devices.revoke_trust(user, rec.device_id)
                return True
        return False


def _bank_ca(state: Path) -> x509.CertificateAuthority:
    """The bank's certificate authority for customers' USB Key keys (SM2; key 0600)."""
    key = _sm2_key(state / "ca.key")
    cert_path = state / "ca.pem"
    if cert_path.exists():
        return x509.CertificateAuthority(x509.load_certificate(cert_path.read_bytes()), key)
    ca = x509.CertificateAuthority.create_root("CN=Demo Bank Customer CA,O=Demo Bank", key)
    published = x509.load_certificate(_publish_once(cert_path, ca.certificate.to_pem()))
    return x509.CertificateAuthority(published, key)


class _StorePhones(MappingPhoneRegistry):
    """Registered phone numbers, read from the customer records in the store."""

    def __init__(self, store: Store) -> None:
        super().__init__({})
        self._store = store

    def registered_phone(self, user_id: str) -> str | None:
        raw = self._store.get(f"bank:cust:{user_id}")
        return None if raw is None else str(json.loads(raw)["phone"])
