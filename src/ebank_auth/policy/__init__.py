"""Multi-factor policy: factors, contexts, policy files, decisions, lockout,
trusted devices and transaction confirmation (AU-1 … AU-9, UK-11).

Typical use::

    from ebank_auth.policy import AuthContext, Factor, Operation, PolicyEngine

    engine = PolicyEngine()                      # the shipped default policy
    decision = engine.decide(AuthContext(user="c1", operation=Operation.LOGIN,  # now (server
                                         presented={Factor.PASSWORD}))          # clock)
    decision.outcome, decision.missing, decision.fired
"""

from ebank_auth.policy.context import (
    DEFAULT_TIMEZONE,
    FUNDS_OPERATIONS,
    AccessChannel,
    AuthContext,
    CustomerType,
    DeviceStatus,
    Operation,
)
from ebank_auth.policy.devices import DeviceRecord, DeviceRegistry, TrustResult
from ebank_auth.policy.engine import Blacklist, Decision, Outcome, PolicyEngine, RiskHook
from ebank_auth.policy.factors import FACTORS, Factor, FactorClass, FactorInfo, Requirement
from ebank_auth.policy.loader import default_policy, load_policy, loads_policy
from ebank_auth.policy.lockout import (
    AttemptResult,
    LockoutEvent,
    LockoutStatus,
    LoginLockout,
    Notifier,
)
from ebank_auth.policy.model import Policy, RiskLevel, Rule
from ebank_auth.policy.notify import GatewayNotifier, lockout_message
from ebank_auth.policy.transactions import (
    CertificateSource,
    ConfirmationResult,
    ConfirmationVerifier,
    Credential,
    CredentialRegistry,
    RawPublicKeySource,
    ReplayCache,
    SignerKind,
)

__all__ = [
    "DEFAULT_TIMEZONE",
    "FACTORS",
    "FUNDS_OPERATIONS",
    "AccessChannel",
    "AttemptResult",
    "AuthContext",
    "Blacklist",
    "CertificateSource",
    "ConfirmationResult",
    "ConfirmationVerifier",
    "Credential",
    "CredentialRegistry",
    "CustomerType",
    "Decision",
    "DeviceRecord",
    "DeviceRegistry",
    "DeviceStatus",
    "Factor",
    "FactorClass",
    "FactorInfo",
    "GatewayNotifier",
    "LockoutEvent",
    "LockoutStatus",
    "LoginLockout",
    "Notifier",
    "Operation",
    "Outcome",
    "Policy",
    "PolicyEngine",
    "RawPublicKeySource",
    "ReplayCache",
    "Requirement",
    "RiskHook",
    "RiskLevel",
    "Rule",
    "SignerKind",
    "TrustResult",
    "default_policy",
    "load_policy",
    "loads_policy",
    "lockout_message",
]
