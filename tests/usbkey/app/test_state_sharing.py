"""Two software-token instances on one state directory never grant an extra PIN try (issue 10, item 1).

Each :class:`SoftToken` object stands for one token process: it has its own in-memory copy of
the state, exactly as two ``emulator start --state S`` daemons would.  Before the fix each
instance decremented its own copy, so two instances together allowed twice the limit and one
could write a higher remaining count back over the other's (roll-back).  Now every command runs
under an exclusive lock on the state file and re-reads the state first.
"""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import PinIncorrect, PinLocked
from ebank_auth.usbkey.emulator import daemon
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.emulator.state import StateFile

from .conftest import USER_PIN, open_session

WRONG = "000000"


def _guess(token: SoftToken, pin: str) -> str:
    """One PIN verification through a fresh host session: 'ok', 'wrong' or 'locked'."""
    session = open_session(token)
    try:
        session.verify_pin(pin)
    except PinIncorrect:
        return "wrong"
    except PinLocked:
        return "locked"
    finally:
        session.close()
    return "ok"


def test_two_instances_share_one_retry_counter(tmp_path: Path) -> None:
    limit = 3
    a = SoftToken(tmp_path, AutoApprove(), retry_limit=limit)
    b = SoftToken(tmp_path, AutoApprove())  # the second process, loaded before any guess
    answers = [_guess(t, WRONG) for t in (a, b, a, b, a, b)]
    assert answers.count("wrong") == limit, answers
    assert StateFile(tmp_path).load().user_pin.remaining == 0
    assert _guess(a, USER_PIN) == "locked"
    assert _guess(b, USER_PIN) == "locked"


def test_no_roll_back_of_the_counter(tmp_path: Path) -> None:
    a = SoftToken(tmp_path, AutoApprove(), retry_limit=6)
    b = SoftToken(tmp_path, AutoApprove())
    for _ in range(3):
        assert _guess(a, WRONG) == "wrong"
    assert _guess(b, WRONG) == "wrong"  # b must not write 5 over a's 3
    assert StateFile(tmp_path).load().user_pin.remaining == 2


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.integers(min_value=1, max_value=5),
    steps=st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=14),
)
def test_any_interleaving_of_three_instances_matches_one_counter(
    tmp_path_factory: pytest.TempPathFactory, limit: int, steps: list[tuple[int, bool]]
) -> None:
    state = tmp_path_factory.mktemp("shared")
    tokens = [SoftToken(state, AutoApprove(), retry_limit=limit)]
    tokens += [SoftToken(state, AutoApprove()) for _ in range(2)]
    remaining = limit
    for which, right in steps:
        answer = _guess(tokens[which], USER_PIN if right else WRONG)
        if remaining == 0:
            assert answer == "locked"
        elif right:
            assert answer == "ok"
            remaining = limit
        else:
            assert answer == "wrong"
            remaining -= 1
        assert StateFile(state).load().user_pin.remaining == remaining


def _guess_until_locked(state_dir: str, results: multiprocessing.Queue[int]) -> None:
    token = SoftToken(Path(state_dir), AutoApprove())
    wrong = 0
    while True:
        answer = _guess(token, WRONG)
        if answer == "locked":
            break
        wrong += answer == "wrong"
    results.put(wrong)


@pytest.mark.slow
def test_processes_racing_on_one_state_get_exactly_the_limit(tmp_path: Path) -> None:
    limit = 6
    SoftToken(tmp_path, AutoApprove(), retry_limit=limit)
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_guess_until_locked, args=(str(tmp_path), results)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert sum(results.get(timeout=5) for _ in procs) == limit
    assert StateFile(tmp_path).load().user_pin.remaining == 0


def test_daemons_started_together_on_one_state_dir_leave_exactly_one(tmp_path: Path) -> None:
    """The daemon holds an exclusive lock for its life: of several started at once, one runs."""
    # port 9 on loopback: nothing listens there, so a running daemon keeps retrying vpcd
    argv = [sys.executable, "-m", "ebank_auth.usbkey.emulator.daemon", "--state", str(tmp_path)]
    argv += ["--host", "127.0.0.1", "--port", "9"]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while sum(p.poll() is None for p in procs) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a loser that was still starting has had time to notice
        alive = [p for p in procs if p.poll() is None]
        assert len(alive) == 1
        assert daemon.status(tmp_path).running
        assert daemon.status(tmp_path).pid == alive[0].pid
        for p in procs:
            if p is not alive[0]:
                assert p.returncode != 0
                assert "already" in (p.stderr.read() if p.stderr else "")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)


def test_stop_never_signals_a_process_that_is_not_the_lock_holder(tmp_path: Path) -> None:
    """A stale pid file naming an unrelated process whose command line says 'emulator' (issue 10 #9)."""
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "emulator", "bystander"]
    )
    try:
        cmdline = Path(f"/proc/{bystander.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"bystander" not in cmdline.read_bytes():  # wait until it has exec'd
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (tmp_path / daemon.PID_FILE).write_text(f"{bystander.pid}\n")
        assert not daemon.status(tmp_path).running
        assert daemon.stop(tmp_path, timeout=2) is False
        time.sleep(0.2)
        assert bystander.poll() is None, "stop signalled a process that is not our token"
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


def _open_token(state_dir: str) -> None:
    for _ in range(5):
        SoftToken(Path(state_dir), AutoApprove())


def test_token_processes_starting_together_never_trip_over_each_other(tmp_path: Path) -> None:
    """Found by CI: two processes starting on one state both published the manufacturer's public
    files through one fixed temporary name, and one found it renamed away (FileNotFoundError).
    A first start of several at once must also create exactly one manufacturer."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_open_token, args=(str(tmp_path),)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 6
    roots = {SoftToken(tmp_path, AutoApprove()).manufacturer.root.to_der() for _ in range(2)}
    assert len(roots) == 1
