"""A SoftToken whose user chose no display approves nothing (issue 10 #7).

Before: ``SoftToken()`` came with a simulated customer that approved every transaction, so a
library user who forgot to choose a display had a token that signs whatever it is shown.
"""

from __future__ import annotations

import logging

import pytest

from ebank_auth.errors import ConfirmationRejected
from ebank_auth.usbkey.emulator import daemon
from ebank_auth.usbkey.emulator.card import SoftToken, demo_token

from .conftest import USER_PIN, open_session, sample_tx


def test_token_without_a_chosen_display_refuses_to_confirm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = SoftToken(None)
    session = open_session(token)
    session.verify_pin(USER_PIN)
    session.generate_key()
    with caplog.at_level(logging.WARNING), pytest.raises(ConfirmationRejected):
        session.confirm_and_sign(sample_tx())
    assert any("no display" in r.getMessage() for r in caplog.records)
    session.close()


def test_the_emulator_daemon_chooses_its_simulated_customer_explicitly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert daemon.DEFAULT_CARD.endswith(":demo_token")
    token = demo_token(tmp_path)
    session = open_session(token)
    session.verify_pin(USER_PIN)
    session.generate_key()
    assert session.confirm_and_sign(sample_tx()).signature
    with pytest.raises(ConfirmationRejected):
        session.confirm_and_sign(sample_tx(memo="REJECT please"))
    session.close()
