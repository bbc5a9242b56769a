"""One-time codes: SMS / voice codes bound to a transaction (:mod:`.codes`),
TOTP / HOTP and GM/T 0021 SM3 dynamic-password tokens (:mod:`.tokens`,
:mod:`.gmt0021`), secrets sealed at rest (:mod:`.sealing`), delivery gateways
(:mod:`.gateway`), phone numbers in E.164 form (:mod:`.phones`) and message templates
(:mod:`.templates`)."""

from ebank_auth.otp.authenticators import (
    AuthenticatorKind,
    AuthenticatorService,
    AuthenticatorSettings,
    AuthenticatorVerification,
    Enrollment,
    OtpAlgorithm,
    hotp_code,
)
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
)
from ebank_auth.otp.gmt0021 import sm3_otp, time_factor
from ebank_auth.otp.phones import normalize_phone
from ebank_auth.otp.sealing import SecretSealer
from ebank_auth.otp.settings import MAX_VALIDITY, DeliveryChannel, OtpSettings, RiskTier
from ebank_auth.otp.templates import Language, render_message

__all__ = [
    "MAX_VALIDITY",
    "AuthenticatorKind",
    "AuthenticatorService",
    "AuthenticatorSettings",
    "AuthenticatorVerification",
    "CodeService",
    "ConsoleGateway",
    "DeliveryChannel",
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
    "VerifiedCode",
    "WebhookGateway",
    "hotp_code",
    "normalize_phone",
    "render_message",
    "sm3_otp",
    "time_factor",
]
