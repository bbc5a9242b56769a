"""Secrets at rest in the software token's state (issue 10 item 6).

The attacker here has a copy of ``token-state.json`` alone (a backup, a bug-report attachment, a
sync tool that took the JSON): it must give away no private key, no device key and nothing to
test PIN guesses against offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from argon2.low_level import Type, hash_secret_raw

from ebank_auth.errors import EncodingError, StoreError
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import ADMIN_PIN, USER_PIN, trust_for


def _made(tmp_path: Path) -> tuple[SoftToken, Path]:
    state = tmp_path / "token"
    token = SoftToken(state, AutoApprove(), user_pin=USER_PIN, admin_pin=ADMIN_PIN)
    with TokenSession.open(InProcessConnection(token), trust_for(token)) as s:
        s.verify_pin(USER_PIN)
        s.generate_key()
    return token, state


def _offline_pin_check(record: dict[str, object], pin: str) -> bool:
    """The attacker's PIN test from the file alone: recompute a verifier from what is stored
    (salt, cost) and compare it with every verifier-like field in clear."""
    salt = base64.b64decode(str(record["salt"]))
    stored = [
        base64.b64decode(str(v))
        for k, v in record.items()
        if "verifier" in k and isinstance(v, str) and not v.startswith("sm3:")
    ]
    candidates = [hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, 20_000)]
    kdf = record.get("kdf")
    if isinstance(kdf, dict):
        candidates.append(
            hash_secret_raw(
                pin.encode(),
                salt,
                time_cost=kdf["t"],
                memory_cost=kdf["m"],
                parallelism=kdf["p"],
                hash_len=32,
                type=Type.ID,
            )
        )
    return any(c in stored for c in candidates)


def test_state_file_alone_gives_away_no_key_and_no_pin(tmp_path: Path) -> None:
    """Attack: read the private keys (device key: clone the token's identity; container key:
    sign transactions) out of a stolen state file, and test PIN guesses offline against its
    verifier (6 digits at PBKDF2 20k iterations fall in minutes)."""
    token, state = _made(tmp_path)
    raw = (state / "token-state.json").read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in raw
    for pem in [token.state.device_key_pem] + [
        c.private_key_pem for c in token.state.containers.values()
    ]:
        body = b"".join(pem.splitlines()[1:-1]).decode()
        assert body[:40] not in raw
    doc = json.loads(raw)
    assert not _offline_pin_check(doc["user_pin"], USER_PIN)
    assert not _offline_pin_check(doc["admin_pin"], ADMIN_PIN)


def test_pin_verifier_is_argon2id_at_a_real_cost(tmp_path: Path) -> None:
    _, state = _made(tmp_path)
    doc = json.loads((state / "token-state.json").read_text(encoding="utf-8"))
    kdf = doc["user_pin"]["kdf"]
    assert kdf["name"] == "argon2id" and kdf["m"] >= 19 * 1024 and kdf["t"] >= 2


def test_key_encryption_key_is_separate_and_private(tmp_path: Path) -> None:
    _, state = _made(tmp_path)
    kek = state / "token-state.kek"
    assert kek.stat().st_mode & 0o077 == 0 and len(kek.read_bytes()) == 16
    assert kek.read_bytes().hex() not in (state / "token-state.json").read_text(encoding="utf-8")


def test_state_without_its_kek_is_refused_not_reset(tmp_path: Path) -> None:
    """A state file moved without its key-encryption key cannot be used — and is never silently
    replaced by a new token."""
    _, state = _made(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(state / "token-state.json", copy / "token-state.json")
    before = (copy / "token-state.json").read_bytes()
    with pytest.raises(StoreError, match="key-encryption key"):
        SoftToken(copy, AutoApprove())
    assert (copy / "token-state.json").read_bytes() == before


def test_sealed_secret_moved_to_another_field_is_refused(tmp_path: Path) -> None:
    """Swap the sealed device key into a container's key slot: the field name is bound as
    associated data, so it does not decrypt there."""
    _, state = _made(tmp_path)
    path = state / "token-state.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    (name,) = doc["containers"]
    doc["containers"][name]["private_key_sealed"] = doc["device_key_sealed"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(EncodingError, match="does not decrypt"):
        SoftToken(state, AutoApprove())


def test_version_1_state_is_refused_with_advice_and_untouched(tmp_path: Path) -> None:
    state = tmp_path / "old"
    state.mkdir()
    old = json.dumps({"version": 1, "serial": "EBK1", "device_key_pem": "-----BEGIN"})
    (state / "token-state.json").write_text(old, encoding="utf-8")
    with pytest.raises(EncodingError, match="delete this software token's state directory"):
        SoftToken(state, AutoApprove())
    assert (state / "token-state.json").read_text(encoding="utf-8") == old
    assert sorted(p.name for p in state.iterdir()) == ["token-state.json", "token-state.lock"]
