"""PIN verify/change/unblock as a state machine (UK-3, UK-4).

Invariants, under any interleaving (including power loss after the counter was
persisted and before the answer):

* the number of consecutive wrong PINs accepted before the lock is exactly the limit;
* the persisted counter always equals the model: a crash never gives a try back;
* a locked user PIN refuses even the right PIN until the admin PIN unblocks it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ebank_auth.errors import PinIncorrect, PinLocked, PinPolicyError
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.emulator.state import StateFile
from ebank_auth.usbkey.protocol import PinRef
from ebank_auth.usbkey.session import TokenSession

from .conftest import ADMIN_PIN, USER_PIN, open_session

NEW_PINS = st.sampled_from(["Zx9-4417", "Qw7-7755", "808172", "kpq2-91"])


class PowerLoss(BaseException):
    """Raised inside the card to simulate the token losing power."""


class PinMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pin-sm-"))
        self.crash_next = False

    @initialize(limit=st.integers(min_value=1, max_value=10), admin_limit=st.integers(1, 10))
    def start(self, limit: int, admin_limit: int) -> None:
        self.limit = limit
        self.admin_limit = admin_limit
        self.remaining = limit
        self.admin_remaining = admin_limit
        self.pin = USER_PIN
        self.wrong_in_a_row = 0
        self.token = SoftToken(
            self.dir, AutoApprove(), retry_limit=limit, admin_retry_limit=admin_limit
        )
        self.session = self._open()

    def _hook(self, point: str) -> None:
        if self.crash_next and point == "pin-decremented":
            self.crash_next = False
            raise PowerLoss

    def _open(self) -> TokenSession:
        self.token.fault_hook = self._hook
        return open_session(self.token)

    def _power_cycle(self) -> None:
        """Throw the token object away and load a new one from disk."""
        self.token = SoftToken(self.dir, AutoApprove())
        self.session = self._open()

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---------------------------------------------------------------- rules
    @rule()
    def wrong_pin(self) -> None:
        try:
            self.session.verify_pin("000000")
        except PinIncorrect as exc:
            assert self.remaining > 0
            self.remaining -= 1
            self.wrong_in_a_row += 1
            assert exc.remaining == self.remaining
        except PinLocked:
            assert self.remaining == 0
        else:
            raise AssertionError("a wrong PIN was accepted")
        if self.remaining == 0:
            assert self.wrong_in_a_row == self.limit

    @rule()
    def right_pin(self) -> None:
        try:
            self.session.verify_pin(self.pin)
        except PinLocked:
            assert self.remaining == 0
        else:
            assert self.remaining > 0
            self.remaining = self.limit
            self.wrong_in_a_row = 0

    @rule(right=st.booleans())
    def crash_during_verify(self, right: bool) -> None:
        """Power is lost after the decrement was persisted, before the answer."""
        self.crash_next = True
        try:
            self.session.verify_pin(self.pin if right else "000000")
        except PowerLoss:
            assert self.remaining > 0
            self.remaining -= 1  # the try is spent, right PIN or not
            self.wrong_in_a_row += 1
        except PinLocked:
            assert self.remaining == 0
        self.crash_next = False
        self._power_cycle()
        if self.remaining == 0:
            assert self.wrong_in_a_row == self.limit

    @precondition(lambda self: self.remaining > 0)
    @rule(new=NEW_PINS)
    def change_pin(self, new: str) -> None:
        try:
            self.session.change_pin(self.pin, new)
        except PinPolicyError:
            assert new == self.pin  # refused by the host before anything was sent
            return
        self.pin = new
        self.remaining = self.limit
        self.wrong_in_a_row = 0

    @rule(right=st.booleans(), new=NEW_PINS)
    def unblock(self, right: bool, new: str) -> None:
        try:
            self.session.unblock_pin(ADMIN_PIN if right else "bad-admin-0", new)
        except PinIncorrect as exc:
            assert not right
            self.admin_remaining -= 1
            assert exc.remaining == self.admin_remaining
            return
        except PinLocked:
            assert self.admin_remaining == 0
            return
        assert right and self.admin_remaining > 0
        self.admin_remaining = self.admin_limit
        self.pin = new
        self.remaining = self.limit
        self.wrong_in_a_row = 0

    @rule()
    def power_cycle(self) -> None:
        self._power_cycle()

    # ---------------------------------------------------------------- invariants
    @invariant()
    def persisted_counters_match_model(self) -> None:
        if not hasattr(self, "token"):
            return
        on_disk = StateFile(self.dir).load()
        assert on_disk.user_pin.remaining == self.remaining
        assert on_disk.admin_pin.remaining == self.admin_remaining
        assert on_disk.user_pin.max_retries == self.limit <= 10

    @invariant()
    def status_reports_the_counter(self) -> None:
        if not hasattr(self, "session"):
            return
        status = self.session.pin_status(PinRef.USER)
        assert (status.remaining, status.max_retries) == (self.remaining, self.limit)


PinMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
test_pin_state_machine = PinMachine.TestCase
