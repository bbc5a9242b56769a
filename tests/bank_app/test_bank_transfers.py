"""Transfers in the reference bank app: SMS code bound to the transaction, duplicates
refused, atomic booking, escaping of attacker-controlled text, masked numbers."""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PAYEE = {"payee_account": "6217000011112222333", "payee_name": "王五"}


def start_transfer(b: Any, amount: str, **extra: str) -> Any:
    b.after_sms_cooldown()
    data = {"payer": b.demo["account"], "amount": amount, "memo": "", "password": b.new_password}
    return b.post("/transfer", {**data, **PAYEE, **extra})


def pending_tx_id(page: str) -> str:
    m = re.search(r'name="tx_id" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def balance(b: Any) -> Decimal:
    return b.services.account(b.demo["account"]).balance


def test_small_transfer_with_sms_code_is_booked_once(customer: Any) -> None:
    b = customer
    b.login()
    before = balance(b)
    page = start_transfer(b, "120.50").get_data(as_text=True)
    tx_id = pending_tx_id(page)
    sms = b.services.outbox.messages()[-1].text
    assert "120.50" in sms  # the code's message states what it approves
    r = b.post("/transfer/confirm", {"tx_id": tx_id, "code": b.last_code()}, form_url="/accounts")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert balance(b) == before - Decimal("120.50")
    history = b.services.account(b.demo["account"]).history
    assert [h["tx_id"] for h in history] == [tx_id]
    # the booking is in the audit log, whose chain verifies
    events = [r["event"] for r in b.services.audit.records()]
    assert "transfer_booked" in events
    b.services.audit.verify()


def test_duplicate_submission_refused(customer: Any) -> None:
    """Attack: the confirm request is replayed (double click, back button, an attacker
    resending a captured POST) to debit the customer twice."""
    b = customer
    b.login()
    before = balance(b)
    tx_id = pending_tx_id(start_transfer(b, "99.00").get_data(as_text=True))
    form = {"tx_id": tx_id, "code": b.last_code()}
    assert b.post("/transfer/confirm", form, form_url="/accounts").status_code == 200
    again = b.post("/transfer/confirm", form, form_url="/accounts")
    assert again.status_code == 409
    assert tx_id in again.get_data(as_text=True)
    assert balance(b) == before - Decimal("99.00")


def test_code_is_bound_to_the_transaction(customer: Any) -> None:
    """Attack: a code sent for one transfer is used to approve a different one."""
    b = customer
    b.login()
    start_transfer(b, "10.00")
    first_code = b.last_code()
    tx2 = pending_tx_id(start_transfer(b, "4000.00").get_data(as_text=True))
    before = balance(b)
    r = b.post("/transfer/confirm", {"tx_id": tx2, "code": first_code}, form_url="/accounts")
    assert r.status_code == 401
    assert balance(b) == before


def test_wrong_transaction_password_refused(customer: Any) -> None:
    b = customer
    b.login()
    r = b.post(
        "/transfer",
        {"payer": b.demo["account"], "amount": "5", "memo": "", "password": "Nope!Nope11", **PAYEE},
    )
    assert r.status_code == 401
    assert "tx_id" not in r.get_data(as_text=True)


def test_cannot_pay_from_someone_elses_account(customer: Any) -> None:
    """Attack: the form's payer field is edited to another customer's account."""
    b = customer
    b.login()
    other = "6222020200998877665"
    r = start_transfer(b, "5.00", payer=other)
    assert r.status_code == 400
    assert b.services.account(other).balance == Decimal("8000.00")


def test_script_memo_and_payee_shown_as_text(customer: Any) -> None:
    b = customer
    b.login()
    evil = "<script>alert(1)</script>"
    page = start_transfer(b, "1.00", memo=evil, payee_name="<b>x</b>").get_data(as_text=True)
    tx_id = pending_tx_id(page)
    b.post("/transfer/confirm", {"tx_id": tx_id, "code": b.last_code()}, form_url="/accounts")
    accounts = b.get("/accounts").get_data(as_text=True)
    assert evil not in accounts and "<b>x</b>" not in accounts
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in accounts


def test_account_numbers_masked(customer: Any) -> None:
    b = customer
    b.login()
    tx_id = pending_tx_id(start_transfer(b, "2.00").get_data(as_text=True))
    b.post("/transfer/confirm", {"tx_id": tx_id, "code": b.last_code()}, form_url="/accounts")
    page = b.get("/accounts").get_data(as_text=True)
    assert b.demo["account"] not in page and PAYEE["payee_account"] not in page
    assert b.demo["account"][-4:] in page and PAYEE["payee_account"][-4:] in page


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(workers=st.integers(2, 6))
def test_concurrent_bookings_of_one_transaction_debit_once(customer: Any, workers: int) -> None:
    """Invariant: however many threads book the same transaction id at once, the
    account is debited exactly once (the compare-and-set also records the id)."""
    s = customer.services
    before = s.account(customer.demo["account"]).balance
    tx = s.new_transfer(customer.demo["account"], PAYEE["payee_account"], "赵六", "3.00", "")
    outcomes: list[str] = []

    def book() -> None:
        try:
            s.book(customer.demo["username"], tx, ip="127.0.0.1")
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=book) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    assert set(outcomes) - {"ok"} <= {"DuplicateTransaction"}
    assert s.account(customer.demo["account"]).balance == before - Decimal("3.00")


def test_more_than_the_balance_is_refused_before_any_code(customer: Any) -> None:
    b = customer
    b.login()
    sent = len(b.services.outbox.messages())
    r = start_transfer(b, "52000.01")
    assert r.status_code == 400
    assert len(b.services.outbox.messages()) == sent
    assert balance(b) == Decimal("52000.00")


def test_english_ui_on_request(customer: Any) -> None:
    b = customer
    page = b.get("/login?lang=en").get_data(as_text=True)
    assert "Username" in page and 'lang="en"' in page
    assert "Username" in b.get("/login").get_data(as_text=True)  # the choice sticks
    assert "用户名" in b.get("/login?lang=zh").get_data(as_text=True)


_HTMLISH = st.text(alphabet="<>&\"'/=ab 中文", min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and s.strip() and "  " not in s
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(memo=_HTMLISH, payee=_HTMLISH)
def test_attacker_text_is_always_escaped(customer: Any, memo: str, payee: str) -> None:
    """Invariant: whatever payee name and memo an attacker chooses, the history page
    shows them as text (HTML-escaped), never as markup."""
    from markupsafe import escape

    b = customer
    if b.client.get_cookie("bank_session") is None or b.get("/accounts").status_code != 200:
        b.login()
    s = b.services
    tx = s.new_transfer(b.demo["account"], PAYEE["payee_account"], payee, "1.00", memo)
    s.book(b.demo["username"], tx, ip="127.0.0.1")
    page = b.get("/accounts").get_data(as_text=True)
    for text in (memo, payee):
        assert str(escape(text)) in page
        if any(c in text for c in "<>&\"'"):
            assert f">{text}<" not in page


def test_a_crash_after_the_debit_leaves_the_booking_audited(
    customer: Any, monkeypatch: Any
) -> None:
    """Write-ahead audit (issue 16 fault tests): the process dies between the debit and the
    ``transfer_booked`` record — here the second audit append raises, as a kill -9 would stop it.
    The money moved, and the ``transfer_booking`` intent, durable before the debit, names it."""
    b = customer
    b.login()
    before = balance(b)
    tx_id = pending_tx_id(start_transfer(b, "33.00").get_data(as_text=True))
    record = b.services.audit.record

    def crash_on_outcome(event: str, **kw: Any) -> Any:
        if event == "transfer_booked":
            raise SystemExit("worker killed")  # nothing after this line runs
        return record(event, **kw)

    monkeypatch.setattr(b.services.audit, "record", crash_on_outcome)
    code = b.last_code()
    with pytest.raises(SystemExit):
        b.post("/transfer/confirm", {"tx_id": tx_id, "code": code}, form_url="/accounts")
    assert balance(b) == before - Decimal("33.00")  # the debit happened
    intents = [
        r
        for r in b.services.audit.records()
        if r["event"] == "transfer_booking" and (r.get("tx") or {}).get("tx_id") == tx_id
    ]
    assert len(intents) == 1
    b.services.audit.verify()
