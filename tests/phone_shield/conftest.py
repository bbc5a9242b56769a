"""A bank with a phone-shield server half and software phones, for the phone-shield tests.

Real parts: a SQLite store, the OTP CodeService with its file gateway, the bank's SM2 CA, the
server half behind its HTTP API (``ApiTransport`` in-process, or a real loopback HTTP server).
The attestation root is the software phone's test root (Google cannot sign here).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ebank_auth.crypto import sm2
from ebank_auth.crypto.x509 import CertificateAuthority, KeyUsage
from ebank_auth.errors import PasswordIncorrect
from ebank_auth.otp import CodeService, FileGateway, MappingPhoneRegistry
from ebank_auth.otp.sealing import SecretSealer
from ebank_auth.phone_shield import (
    AttestationPolicy,
    AttestationTrust,
    PasswordAndSmsCode,
    PasswordAndSmsIdentity,
    PhoneShieldApi,
    PhoneShieldServer,
    PhoneShieldSettings,
)
from ebank_auth.phone_shield.emulator import (
    ApiTransport,
    DeviceClaims,
    KdfCost,
    SoftwareAttestationAuthority,
    SoftwarePhone,
    default_signing_digest,
)
from ebank_auth.phone_shield.emulator.attestation_ca import DEFAULT_PACKAGE
from ebank_auth.store import SQLiteStore
from ebank_auth.transaction import Transaction

PHONES = {"alice": "13800000001", "bob": "13800000002"}
PASSWORDS = {"alice": "correct horse 1", "bob": "battery staple 2"}
SUBJECT = "CN=Alice,OU=Phone Shield,O=Example Bank,C=CN"
PIN = "246810"
FAST_KDF = KdfCost(1, 1024, 1)


def check_password(user: str, password: str) -> None:
    if PASSWORDS.get(user) != password:
        raise PasswordIncorrect()


class Clock:
    """The bank's clock (the store's): real time plus what a test skipped forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Bank:
    store: SQLiteStore
    gateway: FileGateway
    codes: CodeService
    identity: PasswordAndSmsIdentity
    ca: CertificateAuthority
    server: PhoneShieldServer
    api: PhoneShieldApi
    authority: SoftwareAttestationAuthority
    clock: Clock
    phones: list[SoftwarePhone] = field(default_factory=list)

    def sms_code(self, user: str) -> str:
        message = self.gateway.last_for(PHONES[user])
        assert message is not None
        m = re.search(r"(?<![\d,.])(\d{6})(?![\d,.])", message.text)
        assert m is not None
        return m.group(1)

    def identity_proof(self, user: str = "alice") -> PasswordAndSmsCode:
        self.clock.advance(61)  # past the SMS resend cooldown of the previous code
        self.identity.send_code(user)
        return PasswordAndSmsCode(PASSWORDS[user], self.sms_code(user))

    def codes_for(self, user: str = "alice", subject: str = SUBJECT) -> Any:
        start = self.server.start_enrolment(user, subject)
        return self.server.confirm_identity(start.enrolment_id, self.identity_proof(user))

    def phone(
        self, claims: DeviceClaims | None = None, state_dir: Path | None = None
    ) -> SoftwarePhone:
        phone = SoftwarePhone(
            state_dir,
            authority=self.authority,
            claims=claims,
            transport=lambda _url: ApiTransport(self.api),
            kdf_cost=FAST_KDF,
            bank_root=self.ca.certificate,
        )
        self.phones.append(phone)
        return phone

    def enrolled_phone(self, user: str = "alice") -> SoftwarePhone:
        codes = self.codes_for(user)
        phone = self.phone()
        phone.enrol(codes.link, codes.authorisation_code, PIN)
        return phone


def make_bank(tmp_path: Path, settings: PhoneShieldSettings | None = None) -> Bank:
    clock = Clock()
    store = SQLiteStore(tmp_path / "bank.db", clock=clock)
    gateway = FileGateway(tmp_path / "outbox")
    codes = CodeService(store, gateway, MappingPhoneRegistry(PHONES), b"k" * 32)
    identity = PasswordAndSmsIdentity(codes, check_password)
    ca = CertificateAuthority.create_root(
        "CN=Example Bank Phone Shield CA,O=Example Bank,C=CN", sm2.generate_private_key()
    )
    enrolment_key = sm2.generate_private_key()
    enrolment_cert = ca.issue(
        "CN=Example Bank Enrolment,O=Example Bank,C=CN",
        enrolment_key.public_key(),
        key_usage={KeyUsage.KEY_ENCIPHERMENT, KeyUsage.DATA_ENCIPHERMENT},
    )
    authority = SoftwareAttestationAuthority.create()
    server = PhoneShieldServer(
        store,
        sealer=SecretSealer.generate(),
        mac_key=b"m" * 32,
        ca=ca,
        enrolment_key=enrolment_key,
        enrolment_certificate=enrolment_cert,
        attestation_policy=AttestationPolicy(
            DEFAULT_PACKAGE, frozenset({default_signing_digest()})
        ),
        attestation_trust=AttestationTrust.from_roots([authority.root_der()]),
        identity=identity,
        server_url="http://bank.test",
        settings=settings,
    )
    return Bank(
        store, gateway, codes, identity, ca, server, PhoneShieldApi(server), authority, clock
    )


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return make_bank(tmp_path)


def transfer(n: int = 1, amount: str = "1250.00") -> Transaction:
    return Transaction(
        tx_id=f"PS{n}",
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal(amount),
        currency="CNY",
        timestamp=datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc),
    )
