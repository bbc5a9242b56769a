"""One-time codes: SMS / voice codes bound to a transaction (:mod:`.codes`),
TOTP / HOTP and GM/T 0021 SM3 dynamic-password tokens (:mod:`.tokens`,
:mod:`.gmt0021`), secrets sealed at rest (:mod:`.sealing`), delivery gateways
(:mod:`.gateway`) and message templates (:mod:`.templates`)."""

from ebank_auth.otp.codes import (
    CodeService,
    IssuedCode,
    MappingPhoneRegistry,
    PhoneRegistry,
    VerifiedCode,
)
from ebank_auth.otp.gateway import (
    ConsoleGateway,
    FileGateway,
    Gateway,
    OutboundMessage,
    WebhookGateway,
    mask_phone,
)
from ebank_auth.otp.gmt0021 import sm3_otp, time_factor
from ebank_auth.otp.sealing import SecretSealer
from ebank_auth.otp.settings import MAX_VALIDITY, Channel, OtpSettings, RiskTier
from ebank_auth.otp.templates import Language, TransactionSummary, render_message
from ebank_auth.otp.tokens import (
    Enrollment,
    OtpAlgorithm,
    TokenKind,
    TokenService,
    TokenSettings,
    TokenVerification,
    hotp_code,
)

__all__ = [
    "MAX_VALIDITY",
    "Channel",
    "CodeService",
    "ConsoleGateway",
    "Enrollment",
    "FileGateway",
    "Gateway",
    "IssuedCode",
    "Language",
    "MappingPhoneRegistry",
    "OtpAlgorithm",
    "OtpSettings",
    "OutboundMessage",
    "PhoneRegistry",
    "RiskTier",
    "SecretSealer",
    "TokenKind",
    "TokenService",
    "TokenSettings",
    "TokenVerification",
    "TransactionSummary",
    "VerifiedCode",
    "WebhookGateway",
    "hotp_code",
    "mask_phone",
    "render_message",
    "sm3_otp",
    "time_factor",
]
