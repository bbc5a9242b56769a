"""Hypothesis properties of the passkey registry and the ceremony state.

* the signature counter never goes back silently: every presented counter either moves
  the stored one strictly up, or (unless both are zero) blocks the passkey with a typed
  error, and the stored counter never decreases;
* concurrent completes of one ceremony state let exactly one through (threads on one
  SQLite store), and concurrent counters never both win from the same stored value.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.errors import CeremonyInvalid, PasskeyCloneSuspected
from ebank_auth.store import MemoryStore, SQLiteStore, Store
from ebank_auth.webauthn import PasskeyCredential, PasskeyRegistry, PasskeyServer, RejectReason
from webauthn.conftest import ORIGIN, RP
from webauthn.softauthn import SoftAuthenticator
from webauthn.test_server import register

counters = st.integers(min_value=0, max_value=0xFFFFFFFF)


def _cred(start: int, cid: bytes = b"\x01" * 16) -> PasskeyCredential:
    return PasskeyCredential(
        user="c1",
        user_handle=b"\x00" * 32,
        credential_id=cid,
        public_key=b"\xa0",
        algorithm=-7,
        sign_count=start,
        aaguid=bytes(16),
        backup_eligible=False,
        backed_up=False,
        transports=(),
        created_at=0.0,
        last_used_at=None,
        user_verified=True,
        attestation_format="none",
    )


@given(start=counters, presented=st.lists(counters, max_size=12))
def test_a_counter_never_goes_back_silently(start: int, presented: list[int]) -> None:
    registry = PasskeyRegistry(MemoryStore())
    cred = registry.add(_cred(start))
    stored, blocked = start, False
    for n in presented:
        before = registry.get(cred.credential_id)
        assert before is not None
        try:
            after = registry.record_use(cred.credential_id, n, backed_up=False, now=1.0)
        except PasskeyCloneSuspected as exc:
            expected = (
                RejectReason.CREDENTIAL_BLOCKED if blocked else RejectReason.COUNTER_REGRESSION
            )
            assert exc.reason is expected
            assert blocked or (n <= stored and (n or stored))
            blocked = True
        else:
            assert not blocked
            assert n > stored or n == stored == 0  # moved up, or a counterless authenticator
            assert after.sign_count == n
            stored = n
        now = registry.get(cred.credential_id)
        assert now is not None
        assert now.sign_count == stored >= before.sign_count  # never decreases
        assert now.clone_suspected is blocked


def _race(n: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webauthn") / "state.db"


@settings(max_examples=10, deadline=None)
@given(threads=st.integers(min_value=2, max_value=8))
def test_concurrent_completes_of_one_state_let_exactly_one_through(
    sqlite_path: Path, threads: int
) -> None:
    store: Store = SQLiteStore(str(sqlite_path))
    server = PasskeyServer(store, RP)
    auth = SoftAuthenticator(ORIGIN)
    user = f"c{threads}-{id(auth)}"
    register(server, auth, user)
    login = server.authenticate_begin(user)
    response = auth.get(login.options)
    results = _race(threads, lambda i: server.authenticate_complete(login.handle, response))
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and winners[0].user == user
    assert all(isinstance(r, CeremonyInvalid) for r in results if r not in winners)
    assert server.credentials(user)[0].sign_count == 1
    store.close()


@settings(max_examples=10, deadline=None)
@given(presented=st.lists(st.integers(1, 50), min_size=2, max_size=8))
def test_concurrent_counters_never_both_win_from_one_value(
    sqlite_path: Path, presented: list[int]
) -> None:
    store: Store = SQLiteStore(str(sqlite_path))
    registry = PasskeyRegistry(store)
    cred = registry.add(_cred(0, cid=os.urandom(16)))
    results = _race(
        len(presented),
        lambda i: registry.record_use(cred.credential_id, presented[i], backed_up=False, now=1.0),
    )
    accepted = [r.sign_count for r in results if isinstance(r, PasskeyCredential)]
    final = registry.get(cred.credential_id)
    assert final is not None
    # the accepted counters form a strictly increasing chain and the last one is stored
    assert len(set(accepted)) == len(accepted)
    assert final.sign_count == max(accepted, default=0)
    refused = [r for r in results if isinstance(r, PasskeyCloneSuspected)]
    assert len(accepted) + len(refused) == len(presented)
    assert final.clone_suspected is bool(refused)
    store.close()
