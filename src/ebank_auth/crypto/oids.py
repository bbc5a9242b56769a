"""Object identifiers used by the crypto and PKI code, as dotted strings (public).

The code compares OIDs by their dotted form (``ObjectIdentifier.dotted``), so it
works whether or not these OIDs are registered by name with asn1crypto.
"""

from __future__ import annotations

from typing import Final

# SM (GM/T 0006) identifiers
SM2_CURVE: Final = "1.2.156.10197.1.301"
SM2_SIGN_LEGACY: Final = "1.2.156.10197.1.301.1"  # "sm2sign" seen in some older CMS
SM3: Final = "1.2.156.10197.1.401"
SM2_WITH_SM3: Final = "1.2.156.10197.1.501"
SM3_WITH_RSA: Final = "1.2.156.10197.1.504"
GMT_DATA: Final = "1.2.156.10197.6.1.4.2.1"
GMT_SIGNED_DATA: Final = "1.2.156.10197.6.1.4.2.2"

# RFC 3279 / 4055 / 5480 / 5758
EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
P256_CURVE: Final = "1.2.840.10045.3.1.7"
RSA_ENCRYPTION: Final = "1.2.840.113549.1.1.1"
SHA256_WITH_RSA: Final = "1.2.840.113549.1.1.11"
ECDSA_WITH_SHA256: Final = "1.2.840.10045.4.3.2"
SHA256: Final = "2.16.840.1.101.3.4.2.1"

# RFC 5652
CMS_DATA: Final = "1.2.840.113549.1.7.1"
CMS_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
ATTR_CONTENT_TYPE: Final = "1.2.840.113549.1.9.3"
ATTR_MESSAGE_DIGEST: Final = "1.2.840.113549.1.9.4"
ATTR_SIGNING_TIME: Final = "1.2.840.113549.1.9.5"

# RFC 3161 / RFC 5035 / RFC 5816 (ESS), ETSI CAdES / GB/T 25064
CT_TST_INFO: Final = "1.2.840.113549.1.9.16.1.4"
ATTR_SIGNING_CERTIFICATE: Final = "1.2.840.113549.1.9.16.2.12"
ATTR_SIGNING_CERTIFICATE_V2: Final = "1.2.840.113549.1.9.16.2.47"
ATTR_SIGNATURE_TIME_STAMP_TOKEN: Final = "1.2.840.113549.1.9.16.2.14"  # noqa: S105 (an OID)
KP_TIME_STAMPING: Final = "1.3.6.1.5.5.7.3.8"
SHA1: Final = "1.3.14.3.2.26"
SHA384: Final = "2.16.840.1.101.3.4.2.2"
SHA512: Final = "2.16.840.1.101.3.4.2.3"

# RFC 5280 extensions
EXT_SUBJECT_KEY_ID: Final = "2.5.29.14"
EXT_KEY_USAGE: Final = "2.5.29.15"
EXT_SUBJECT_ALT_NAME: Final = "2.5.29.17"
EXT_BASIC_CONSTRAINTS: Final = "2.5.29.19"
EXT_CRL_NUMBER: Final = "2.5.29.20"
EXT_CRL_REASON: Final = "2.5.29.21"
EXT_AUTHORITY_KEY_ID: Final = "2.5.29.35"
EXT_EXTENDED_KEY_USAGE: Final = "2.5.29.37"
EXT_CERTIFICATE_POLICIES: Final = "2.5.29.32"
EXT_CRL_DISTRIBUTION_POINTS: Final = "2.5.29.31"
EXT_NAME_CONSTRAINTS: Final = "2.5.29.30"
EXT_POLICY_CONSTRAINTS: Final = "2.5.29.36"
EXT_INHIBIT_ANY_POLICY: Final = "2.5.29.54"
ANY_EXTENDED_KEY_USAGE: Final = "2.5.29.37.0"

# Extensions the chain validator understands; an unknown *critical* one is refused.
UNDERSTOOD_EXTENSIONS: Final = frozenset(
    {
        EXT_SUBJECT_KEY_ID,
        EXT_KEY_USAGE,
        EXT_SUBJECT_ALT_NAME,
        EXT_BASIC_CONSTRAINTS,
        EXT_AUTHORITY_KEY_ID,
        EXT_EXTENDED_KEY_USAGE,
        EXT_CRL_DISTRIBUTION_POINTS,
        EXT_NAME_CONSTRAINTS,  # directoryName, dNSName, rfc822Name, iPAddress
        # certificatePolicies is not processed: a critical one is refused
    }
)
