"""RFC 4226 / 6238 and GM/T 0021 conformance vectors."""

from __future__ import annotations

from typing import Any

import pytest

from ebank_auth.otp import OtpAlgorithm, hotp_code, sm3_otp, time_factor
from ebank_auth.otp.authenticators import (
    AuthenticatorKind,
    AuthenticatorService,
    AuthenticatorSettings,
)
from ebank_auth.store import MemoryStore
from plugins.store_backends import FakeClock


def test_rfc4226_hotp(otp_vectors: Any) -> None:
    v = otp_vectors["hotp_sha1"]
    secret = v["secret_ascii"].encode()
    for counter, expected in enumerate(v["by_counter"]):
        assert hotp_code(secret, counter, v["digits"], OtpAlgorithm.SHA1) == expected


def test_rfc6238_totp(otp_vectors: Any) -> None:
    for case in otp_vectors["totp"]:
        secret = case["secret_ascii"].encode()
        for at, expected in case["at"].items():
            step = int(at) // case["period"]
            got = hotp_code(secret, step, case["digits"], OtpAlgorithm(case["algo"]))
            assert got == expected, (case["algo"], at)


def test_rfc6238_through_the_service(otp_vectors: Any) -> None:
    """The vectors also pass end to end: enrol the RFC seed, verify at the RFC times."""
    from ebank_auth.otp import SecretSealer

    for case in otp_vectors["totp"]:
        settings = AuthenticatorSettings(
            algorithm=OtpAlgorithm(case["algo"]),
            digits=case["digits"],
            period=case["period"],
            window=0,
        )
        clock = FakeClock()
        service = AuthenticatorService(MemoryStore(clock=clock), SecretSealer.generate(), settings)
        service.enroll("u", secret=case["secret_ascii"].encode())
        for at, expected in sorted(case["at"].items(), key=lambda kv: int(kv[0])):
            clock.set(float(at))  # the store's clock: verification time is never chosen
            assert service.verify("u", expected).counter == int(at) // 30


def test_gmt0021_vectors(gm_vectors: Any) -> None:
    for case in gm_vectors["gmt0021_sm3_otp"]["cases"]:
        got = sm3_otp(bytes.fromhex(case["k"]), case["t"], case["c"], case["q"])
        assert got == case["otp"]
        # T = floor(t / Tc) with Tc = 1 in the vectors
        assert time_factor(case["t"], 1) == case["t"]


def test_gmt0021_hotp_code_uses_sm3_otp() -> None:
    key = bytes.fromhex("1234567890abcdefabcdef1234567890")
    assert hotp_code(key, 1313998995, 6, OtpAlgorithm.SM3) == sm3_otp(key, 1313998995, 0, b"")
    settings = AuthenticatorSettings(
        kind=AuthenticatorKind.TOTP, algorithm=OtpAlgorithm.SM3, period=60
    )
    assert settings.algorithm is OtpAlgorithm.SM3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": b"short"},
        {"t": -1},
        {"t": 1 << 64},
        {"counter": 1 << 32},
        {"digits": 3},
        {"challenge": "挑战"},
    ],
)
def test_gmt0021_rejects_bad_input(kwargs: dict[str, Any]) -> None:
    from ebank_auth.errors import EbankAuthError

    args: dict[str, Any] = {"key": b"k" * 16, "t": 1, "counter": 0, "challenge": b"", "digits": 6}
    args.update(kwargs)
    with pytest.raises(EbankAuthError):
        sm3_otp(args["key"], args["t"], args["counter"], args["challenge"], args["digits"])
