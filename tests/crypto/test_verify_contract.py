"""The library-wide contract: a public ``verify*`` raises; it never returns a verdict.

A bank app that ignores the return value of ``verify(...)`` must still be safe, so a
``verify*`` either returns nothing (``None``) or the verified data itself, and refuses
by raising a typed error.  Functions that return a verdict are named ``check_*`` /
``validate_*``.  This test walks every public module of the package and fails for a
``verify*`` whose return annotation is ``bool`` or a result type carrying a verdict
(an ``ok`` / ``valid`` attribute).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Iterator

import ebank_auth

VERDICT_ATTRIBUTES = ("ok", "valid", "is_valid", "verified")


def _public_modules() -> Iterator[object]:
    for info in pkgutil.walk_packages(ebank_auth.__path__, "ebank_auth."):
        if info.name.endswith("__main__"):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional extra (pyscard, hidapi, redis…) is not installed
            continue


def _verify_functions() -> Iterator[tuple[str, Callable[..., object]]]:
    for module in _public_modules():
        mod_name = module.__name__  # type: ignore[attr-defined]
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod_name:
                continue
            if inspect.isfunction(obj) and name.startswith("verify"):
                yield f"{mod_name}.{name}", obj
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("verify") and inspect.isfunction(member):
                        yield f"{mod_name}.{name}.{attr}", member


def _is_verdict(tp: object) -> bool:
    if tp is bool:
        return True
    args = typing.get_args(tp)
    if args:  # Optional[...], unions, tuples: a verdict hidden in any member
        return any(_is_verdict(a) for a in args if a is not type(None))
    if not inspect.isclass(tp):
        return False
    # dataclass fields without a default are annotations only, not class attributes
    names = {n for klass in tp.__mro__ for n in getattr(klass, "__annotations__", {})}
    names.update(dir(tp))
    return any(a in names for a in VERDICT_ATTRIBUTES)


def test_the_walk_finds_the_verify_functions() -> None:
    names = {name for name, _ in _verify_functions()}
    for expected in (
        "ebank_auth.crypto.cms.verify",
        "ebank_auth.audit.log.AuditLog.verify",
        "ebank_auth.audit.log.verify_jsonl",
        "ebank_auth.audit.signing.HmacSm3Key.verify",
        "ebank_auth.audit.signing.Sm2AuditVerifier.verify",
        "ebank_auth.passwords.PasswordHasher.verify",
        "ebank_auth.crypto.keys.verify_data",
        "ebank_auth.crypto.sm2.SM2PublicKey.verify",
    ):
        assert expected in names


def test_no_verify_returns_a_verdict() -> None:
    offenders = []
    for name, func in _verify_functions():
        try:
            hints = typing.get_type_hints(func)
        except Exception as exc:
            offenders.append(f"{name}: return annotation cannot be resolved ({exc})")
            continue
        if "return" not in hints:
            offenders.append(f"{name}: no return annotation")
        elif _is_verdict(hints["return"]):
            offenders.append(f"{name} -> {hints['return']!r}")
    assert not offenders, "verify* must raise, not return a verdict:\n" + "\n".join(offenders)


def test_the_detector_would_catch_a_bool_or_a_report() -> None:
    from ebank_auth.audit.records import AuditReport
    from ebank_auth.crypto.cms import CMSValidationResult

    assert _is_verdict(bool)
    assert _is_verdict(AuditReport) and _is_verdict(CMSValidationResult)
    assert _is_verdict(typing.Optional[AuditReport])  # noqa: UP045 - the form under test
    assert not _is_verdict(type(None)) and not _is_verdict(bytes)
