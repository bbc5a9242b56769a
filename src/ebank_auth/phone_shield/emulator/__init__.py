"""The software phone (device side of the phone shield): keystore, attestation stand-in,
state, the HTTP client of the bank's API and a small mobile-style web page.

Like the software token it is a stand-in for hardware that cannot run here: it imports the
neutral :mod:`ebank_auth.phone_shield.protocol` and :mod:`~ebank_auth.phone_shield.keydescription`,
never the bank's server half; nothing in the library imports it but the CLI, tests and demos.
"""

from ebank_auth.phone_shield.emulator.attestation_ca import (
    DEFAULT_PACKAGE,
    DeviceClaims,
    SoftwareAttestationAuthority,
    default_signing_digest,
)
from ebank_auth.phone_shield.emulator.keystore import (
    BiometricPrompt,
    KdfCost,
    Keystore,
    SoftwareKeystore,
)
from ebank_auth.phone_shield.emulator.phone import (
    ApiTransport,
    EnrolmentOffer,
    HttpTransport,
    PendingConfirmation,
    SoftwarePhone,
    Transport,
)

__all__ = [
    "DEFAULT_PACKAGE",
    "ApiTransport",
    "BiometricPrompt",
    "DeviceClaims",
    "EnrolmentOffer",
    "HttpTransport",
    "KdfCost",
    "Keystore",
    "PendingConfirmation",
    "SoftwareAttestationAuthority",
    "SoftwareKeystore",
    "SoftwarePhone",
    "Transport",
    "default_signing_digest",
]
