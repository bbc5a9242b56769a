"""The layering rules of docs/contributing.md, checked on the source by an ``ast`` walk.

Each rule is a row of ``RULES``: which modules it applies to, which imports it forbids (and
what it allows), and the sentence a failure prints with the offending ``file:line``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: Host-side token modules: the emulator (device side) never imports them.  The package
#: ``ebank_auth.usbkey`` itself is the host facade.
HOST_USBKEY = (
    "ebank_auth.usbkey.session",
    "ebank_auth.usbkey.attestation",
    "ebank_auth.usbkey.key_attestation",
    "ebank_auth.usbkey.conformance",
    "ebank_auth.usbkey.connect",
    "ebank_auth.usbkey.token",
    "ebank_auth.usbkey.signing_key",
    "ebank_auth.usbkey.transport",
    "ebank_auth.usbkey.vendor",
)
#: What host and device share (wire formats, framing): either side may import these.
NEUTRAL_USBKEY = (
    "ebank_auth.usbkey.protocol",
    "ebank_auth.usbkey.tlv",
    "ebank_auth.usbkey.apdu",
    "ebank_auth.usbkey.secure_channel",
    "ebank_auth.usbkey.card_interface",
    "ebank_auth.usbkey.hid_framing",
    "ebank_auth.usbkey.manufacturer",
    "ebank_auth.usbkey.attestation_ext",
    "ebank_auth.usbkey.display_layout",
    "ebank_auth.usbkey.piv_protocol",
)
#: Services and apps above the token layer: nothing in usbkey, crypto or store imports them.
SERVICES = (
    "ebank_auth.policy",
    "ebank_auth.otp",
    "ebank_auth.audit",
    "ebank_auth.softkeyboard",
    "ebank_auth.phone_shield",
    "ebank_auth.passwords",
    "ebank_auth.agent",
)
#: Programs built on the library: only the CLI starts them, nothing in the library imports them.
APPS = ("ebank_auth.agent",)

#: What the passkey server may build on.
WEBAUTHN_MAY_IMPORT = (
    "ebank_auth.store",
    "ebank_auth.policy",
    "ebank_auth.audit",
    "ebank_auth.errors",
    "ebank_auth.crypto",
)

#: What the phone shield (the bank's half) may build on.
PHONE_SHIELD_MAY_IMPORT = (
    "ebank_auth.phone_shield",
    "ebank_auth.crypto",
    "ebank_auth.store",
    "ebank_auth.otp",
    "ebank_auth.audit",
    "ebank_auth.policy",
    "ebank_auth.errors",
    "ebank_auth.transaction",
)
#: The phone shield's server half: the software phone (device side) never imports it.
PHONE_SHIELD_SERVER = (
    "ebank_auth.phone_shield.server",
    "ebank_auth.phone_shield.http",
    "ebank_auth.phone_shield.attestation",
)

#: Modules allowed to import a private ``crypto.x509._*`` module from outside crypto/x509.
#: Empty since the crypto seams landed (public ``crypto.oids`` / ``crypto.der`` / ``crypto.keys``);
#: keep it empty.
PRIVATE_X509_ALLOWED: frozenset[str] = frozenset()


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Use:
    """One import (``target`` a dotted module name) or one ``print(`` call (target ``print()``)."""

    path: str  # relative to src/, e.g. ebank_auth/usbkey/session.py
    module: str  # dotted name of the importing module
    line: int
    target: str


@dataclass(frozen=True)
class Rule:
    text: str
    applies: Callable[[Use], bool]
    forbidden: Callable[[Use], bool]
    allowed_paths: frozenset[str] = frozenset()


def _leaf(pkg: str, extra: tuple[str, ...] = ()) -> Rule:
    own = ("ebank_auth.errors", pkg, *extra)
    return Rule(
        f"{pkg} is a leaf: it imports nothing else of ebank_auth but errors",
        lambda u: _under(u.module, pkg),
        lambda u: _under(u.target, "ebank_auth") and not _under(u.target, *own),
    )


RULES: tuple[Rule, ...] = (
    _leaf("ebank_auth.crypto"),
    _leaf("ebank_auth.store", ("ebank_auth.localtime", "ebank_auth.paths")),
    Rule(
        "the emulator (device side) never imports host-side usbkey code; share wire code "
        "through a neutral module (protocol, apdu, tlv, hid_framing, card_interface, manufacturer)",
        lambda u: _under(u.module, "ebank_auth.usbkey.emulator"),
        lambda u: u.target == "ebank_auth.usbkey" or _under(u.target, *HOST_USBKEY),
    ),
    Rule(
        "host code never imports the emulator (only the CLI's emulator command, tests and demos)",
        lambda u: not _under(u.module, "ebank_auth.usbkey.emulator", "ebank_auth.cli"),
        lambda u: _under(u.target, "ebank_auth.usbkey.emulator"),
    ),
    Rule(
        "a lower layer never imports a higher one: usbkey, crypto and store import no services",
        lambda u: _under(u.module, "ebank_auth.usbkey", "ebank_auth.crypto", "ebank_auth.store"),
        lambda u: _under(u.target, *SERVICES),
    ),
    Rule(
        "the agent is a program on top of the library: only the CLI imports it",
        lambda u: not _under(u.module, "ebank_auth.cli", *APPS),
        lambda u: _under(u.target, *APPS),
    ),
    Rule(
        "the agent reaches tokens through the host facade only (no APDU, session or transport "
        "code, no emulator): open_token, Token and the errors",
        lambda u: _under(u.module, *APPS),
        lambda u: (
            _under(u.target, "ebank_auth.usbkey")
            and not _under(
                u.target,
                "ebank_auth.usbkey.protocol",
                "ebank_auth.usbkey.transport.base",
            )
            and u.target != "ebank_auth.usbkey"
        ),
    ),
    Rule(
        "transports move bytes: usbkey/transport imports no APDU, session or token code",
        lambda u: _under(u.module, "ebank_auth.usbkey.transport"),
        lambda u: (
            _under(u.target, "ebank_auth.usbkey")
            and not _under(
                u.target, "ebank_auth.usbkey.transport", "ebank_auth.usbkey.card_interface"
            )
            and not _under(u.target, "ebank_auth.usbkey.hid_framing")
        ),
    ),
    Rule(
        "only usbkey/transport/pcsc.py imports smartcard (pyscard)",
        lambda u: u.module != "ebank_auth.usbkey.transport.pcsc",
        lambda u: _under(u.target, "smartcard"),
    ),
    Rule(
        "only store/postgres.py imports psycopg (the postgres extra)",
        lambda u: u.module != "ebank_auth.store.postgres",
        lambda u: _under(u.target, "psycopg", "psycopg_pool"),
    ),
    Rule(
        "only store/redis.py imports redis (the redis extra)",
        lambda u: u.module != "ebank_auth.store.redis",
        lambda u: _under(u.target, "redis"),
    ),
    Rule(
        "only crypto/backends/openssl_sm2.py (libcrypto) and usbkey/vendor/skf.py (SKF "
        "libraries) import cffi: C libraries are loaded in the one module that wraps each",
        lambda u: (
            u.module
            not in ("ebank_auth.crypto.backends.openssl_sm2", "ebank_auth.usbkey.vendor.skf")
        ),
        lambda u: _under(u.target, "cffi"),
    ),
    Rule(
        "only usbkey/vendor/pkcs11.py imports PyKCS11",
        lambda u: u.module != "ebank_auth.usbkey.vendor.pkcs11",
        lambda u: _under(u.target, "PyKCS11"),
    ),
    Rule(
        "only usbkey/transport/hid.py imports hid (hidapi)",
        lambda u: u.module != "ebank_auth.usbkey.transport.hid",
        lambda u: _under(u.target, "hid"),
    ),
    Rule(
        "only ebank_auth.webauthn and ebank_auth.fido_device import fido2 (python-fido2); the "
        "software token's CTAP2 applet is device firmware and never does",
        lambda u: not _under(u.module, "ebank_auth.webauthn", "ebank_auth.fido_device"),
        lambda u: _under(u.target, "fido2"),
    ),
    Rule(
        "ebank_auth.webauthn builds on store, policy, audit, errors and crypto only",
        lambda u: _under(u.module, "ebank_auth.webauthn"),
        lambda u: (
            _under(u.target, "ebank_auth")
            and not _under(u.target, "ebank_auth.webauthn", *WEBAUTHN_MAY_IMPORT)
        ),
    ),
    Rule(
        "nothing but the app and the CLI imports ebank_auth.webauthn",
        lambda u: not _under(u.module, "ebank_auth.webauthn", "ebank_auth.cli"),
        lambda u: _under(u.target, "ebank_auth.webauthn"),
    ),
    Rule(
        "ebank_auth.phone_shield builds on crypto, store, otp, audit, policy, errors and "
        "transaction only",
        lambda u: _under(u.module, "ebank_auth.phone_shield"),
        lambda u: _under(u.target, "ebank_auth") and not _under(u.target, *PHONE_SHIELD_MAY_IMPORT),
    ),
    Rule(
        "nothing the phone shield builds on imports it back (only the CLI and apps do)",
        lambda u: _under(u.module, *PHONE_SHIELD_MAY_IMPORT[1:]),
        lambda u: _under(u.target, "ebank_auth.phone_shield"),
    ),
    Rule(
        "the software phone (device side) never imports the bank's half: share wire code "
        "through phone_shield.protocol and phone_shield.keydescription",
        lambda u: _under(u.module, "ebank_auth.phone_shield.emulator"),
        lambda u: u.target == "ebank_auth.phone_shield" or _under(u.target, *PHONE_SHIELD_SERVER),
    ),
    Rule(
        "the bank's code never imports the software phone (only the CLI, tests and demos)",
        lambda u: not _under(u.module, "ebank_auth.phone_shield.emulator", "ebank_auth.cli"),
        lambda u: _under(u.target, "ebank_auth.phone_shield.emulator"),
    ),
    Rule(
        "only the CLI imports click",
        lambda u: not _under(u.module, "ebank_auth.cli"),
        lambda u: _under(u.target, "click"),
    ),
    Rule(
        "only the CLI prints (the library logs)",
        lambda u: not _under(u.module, "ebank_auth.cli"),
        lambda u: u.target == "print()",
    ),
    Rule(
        "nothing but the CLI imports ebank_auth.cli",
        lambda u: not _under(u.module, "ebank_auth.cli") and u.module != "ebank_auth.__main__",
        lambda u: _under(u.target, "ebank_auth.cli"),
    ),
    Rule(
        "only crypto/x509 imports the private crypto.x509._* modules (use the public names)",
        lambda u: not _under(u.module, "ebank_auth.crypto.x509"),
        lambda u: (
            _under(u.target, "ebank_auth.crypto.x509")
            and any(part.startswith("_") for part in u.target.split(".")[3:])
        ),
        PRIVATE_X509_ALLOWED,
    ),
)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(root: Path, dotted: str) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def uses(root: Path) -> Iterator[Use]:
    """Every import and ``print(`` call in the package trees under ``root``."""
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        module = _module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Use(rel, module, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    yield Use(rel, module, node.lineno, sub if _is_module(root, sub) else source)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                yield Use(rel, module, node.lineno, "print()")


def violations(root: Path) -> list[str]:
    out = []
    for use in uses(root):
        for rule in RULES:
            if rule.applies(use) and rule.forbidden(use) and use.path not in rule.allowed_paths:
                what = "calls print(" if use.target == "print()" else f"imports {use.target}"
                out.append(f"src/{use.path}:{use.line}: {what} — rule: {rule.text}")
    return out


def test_source_follows_the_layering_rules() -> None:
    found = violations(SRC)
    assert not found, "layering rules broken (docs/contributing.md):\n" + "\n".join(found)


def test_allow_list_holds_only_current_offenders() -> None:
    """An allow-list entry that no longer offends must be removed (the list only shrinks)."""
    rule = RULES[-1]
    offending = {u.path for u in uses(SRC) if rule.applies(u) and rule.forbidden(u)}
    stale = sorted(PRIVATE_X509_ALLOWED - offending)
    assert not stale, f"remove from PRIVATE_X509_ALLOWED, they comply now: {stale}"


@pytest.mark.parametrize(
    ("path", "source", "rule_words"),
    [
        ("ebank_auth/usbkey/emulator/x.py", "from ebank_auth.usbkey import session\n", "emulator"),
        ("ebank_auth/usbkey/emulator/x.py", "import ebank_auth.usbkey\n", "emulator"),
        ("ebank_auth/usbkey/transport/x.py", "from ..emulator import card\n", "host code"),
        ("ebank_auth/crypto/x.py", "from ebank_auth.usbkey import protocol\n", "leaf"),
        ("ebank_auth/store/x.py", "from ebank_auth.policy import engine\n", "leaf"),
        ("ebank_auth/otp/x.py", "import smartcard.scard\n", "smartcard"),
        ("ebank_auth/store/sqlite.py", "import psycopg\n", "psycopg"),
        ("ebank_auth/audit/x.py", "from redis import Redis\n", "redis"),
        ("ebank_auth/usbkey/x.py", "import hid\n", "hidapi"),
        ("ebank_auth/usbkey/vendor/x.py", "from cffi import FFI\n", "cffi"),
        ("ebank_auth/policy/x.py", "import click\n", "click"),
        ("ebank_auth/audit/x.py", "def f():\n    print('x')\n", "prints"),
        ("ebank_auth/usbkey/x.py", "from ebank_auth.cli import token_cmd\n", "ebank_auth.cli"),
        ("ebank_auth/pki.py", "from ebank_auth.crypto.x509._der import x\n", "private"),
        ("ebank_auth/usbkey/transport/x.py", "from ebank_auth.usbkey.apdu import A\n", "bytes"),
        ("ebank_auth/usbkey/x.py", "from fido2.pcsc import CtapPcscDevice\n", "fido2"),
        ("ebank_auth/policy/x.py", "import fido2.server\n", "fido2"),
        ("ebank_auth/webauthn/x.py", "from ebank_auth.usbkey import session\n", "builds on"),
        ("ebank_auth/webauthn/x.py", "from ebank_auth.otp import codes\n", "builds on"),
        ("ebank_auth/policy/x.py", "from ebank_auth.webauthn import server\n", "app and the CLI"),
        ("ebank_auth/otp/x.py", "import ebank_auth.webauthn\n", "app and the CLI"),
        ("ebank_auth/policy/x.py", "from ebank_auth.agent import login_message\n", "agent"),
        ("ebank_auth/usbkey/x.py", "import ebank_auth.agent.server\n", "agent"),
        ("ebank_auth/agent/x.py", "from ebank_auth.usbkey.session import T\n", "facade"),
        ("ebank_auth/agent/x.py", "from ebank_auth.usbkey.emulator import card\n", "emulator"),
        ("ebank_auth/phone_shield/x.py", "from ebank_auth.usbkey import session\n", "builds on"),
        ("ebank_auth/otp/x.py", "from ebank_auth.phone_shield import server\n", "back"),
        (
            "ebank_auth/phone_shield/emulator/x.py",
            "from ebank_auth.phone_shield import server\n",
            "bank's half",
        ),
        (
            "ebank_auth/phone_shield/x.py",
            "from ebank_auth.phone_shield.emulator import phone\n",
            "software phone",
        ),
    ],
)
def test_checker_catches_each_kind_of_break(
    tmp_path: Path, path: str, source: str, rule_words: str
) -> None:
    for pkg in (
        "ebank_auth/usbkey/emulator/card.py",
        "ebank_auth/usbkey/session.py",
        "ebank_auth/usbkey/protocol.py",
        "ebank_auth/usbkey/apdu.py",
        "ebank_auth/policy/engine.py",
        "ebank_auth/cli/token_cmd.py",
        "ebank_auth/crypto/x509/_der.py",
        "ebank_auth/agent/server.py",
        "ebank_auth/usbkey/session.py",
        "ebank_auth/phone_shield/server.py",
        "ebank_auth/phone_shield/emulator/phone.py",
    ):
        (tmp_path / pkg).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg).write_text("")
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(source)
    found = violations(tmp_path)
    assert found, f"{source!r} in {path} was not caught"
    assert all(f.startswith(f"src/{path}:") for f in found), found
    assert any(rule_words in f for f in found), found


def test_neutral_modules_are_allowed_on_both_sides(tmp_path: Path) -> None:
    for mod in NEUTRAL_USBKEY:
        (tmp_path / (mod.replace(".", "/") + ".py")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / (mod.replace(".", "/") + ".py")).write_text("")
    lines = "".join(f"import {m}\n" for m in NEUTRAL_USBKEY)
    for side in ("ebank_auth/usbkey/emulator/card.py", "ebank_auth/usbkey/session.py"):
        (tmp_path / side).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / side).write_text(lines)
    assert violations(tmp_path) == []


def test_webauthn_may_use_fido2_and_the_services_it_builds_on(tmp_path: Path) -> None:
    lines = "import fido2.server\n" + "".join(f"import {m}\n" for m in WEBAUTHN_MAY_IMPORT)
    for rel in ("ebank_auth/webauthn/server.py", "ebank_auth/cli/fido_cmd.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ebank_auth/webauthn/server.py").write_text(lines)
    (tmp_path / "ebank_auth/cli/fido_cmd.py").write_text("import ebank_auth.webauthn\n")
    assert violations(tmp_path) == []
