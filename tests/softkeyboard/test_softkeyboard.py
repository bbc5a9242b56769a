"""Dynamic soft keyboard: layouts, per-keystroke encryption, decoding, refusals."""

from __future__ import annotations

import contextlib
import itertools
import re
import string
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2
from ebank_auth.errors import ConfigurationError, SoftKeyboardError
from ebank_auth.softkeyboard import (
    KeyboardClient,
    KeyboardMode,
    SoftKeyboard,
    commit_length,
    encode_keystroke,
)
from ebank_auth.store import MemoryStore
from plugins.store_backends import FakeClock, StoreFactory

SERVER_KEY = sm2.generate_private_key()


def _kb(store: object = None, **kw: object) -> SoftKeyboard:
    return SoftKeyboard(store or MemoryStore(clock=FakeClock()), SERVER_KEY, **kw)  # type: ignore[arg-type]


_COMMITMENTS: dict[bytes, bytes] = {}


def _type(kb: SoftKeyboard, text: str, mode: KeyboardMode = KeyboardMode.DIGITS) -> list[bytes]:
    layout = kb.open(mode)
    by_label = {label: key_id for key_id, label in layout.keys}
    client = KeyboardClient(layout.client_view())
    for ch in text:
        client.press(by_label[ch])
    _COMMITMENTS[layout.session_id.encode()] = client.commitment()
    return [layout.session_id.encode(), *client.ciphertexts]


def _c(session: bytes) -> bytes:
    """The genuine client's length commitment for a session typed by ``_type``."""
    return _COMMITMENTS.get(session, b"")


def test_round_trip_and_mask(store_backend: StoreFactory) -> None:
    kb = _kb(store_backend(FakeClock()))
    layout = kb.open()
    assert sorted(label for _, label in layout.keys) == list(string.digits)
    by_label = {label: key_id for key_id, label in layout.keys}
    client = KeyboardClient(layout.client_view())
    masks = [client.press(by_label[c]) for c in "135790"]
    assert masks == ["*", "**", "***", "****", "*****", "******"]  # SK-2
    with kb.submit(
        layout.session_id, client.ciphertexts, commitment=client.commitment()
    ) as decoded:
        assert bytes(decoded.value) == b"135790"
        assert decoded.masked == "******" and not decoded.system_keyboard
    assert decoded.value == bytearray()  # wiped on exit
    with pytest.raises(SoftKeyboardError, match="already used"):
        kb.submit(layout.session_id, client.ciphertexts, commitment=client.commitment())


def test_client_view_has_no_labels_in_text() -> None:
    layout = _kb().open(KeyboardMode.ALPHANUMERIC)
    view = layout.client_view()
    assert "label" not in view and len(view["key_ids"]) == 62  # type: ignore[arg-type]
    svg = str(view["svg"])
    assert "<text" not in svg
    assert len(re.findall(r'data-key-id="([0-9a-f]{12})"', svg)) == 62
    # no glyph characters appear outside attribute values
    stripped = re.sub(r'"[^"]*"', '""', svg)
    assert not re.search(r">[^<]+<", stripped)


def test_alphanumeric_round_trip() -> None:
    kb = _kb()
    session, *cts = _type(kb, "Pa55wordZ", KeyboardMode.ALPHANUMERIC)
    assert bytes(kb.submit(session.decode(), cts, commitment=_c(session)).value) == b"Pa55wordZ"


def test_reordered_replayed_dropped_keystrokes_refused() -> None:
    kb = _kb()
    for tamper in (
        lambda c: [c[1], c[0], *c[2:]],  # reordered
        lambda c: [*c, c[-1]],  # a keystroke replayed
        lambda c: c[1:],  # first keystroke dropped
        lambda c: [*c[:2], b"garbage", *c[3:]],  # garbage ciphertext
        lambda c: [*c[:-1], bytes([c[-1][0] ^ 1]) + c[-1][1:]],  # altered ciphertext
    ):
        session, *cts = _type(kb, "2468")
        with pytest.raises(SoftKeyboardError):
            kb.submit(session.decode(), tamper(cts), commitment=_c(session))
        # state intact: the genuine keystrokes still decode once
        assert bytes(kb.submit(session.decode(), cts, commitment=_c(session)).value) == b"2468"


def test_keystroke_from_another_session_refused() -> None:
    kb = _kb()
    s1, *c1 = _type(kb, "1111")
    _s2, *c2 = _type(kb, "2222")
    with pytest.raises(SoftKeyboardError, match="another keyboard session"):
        kb.submit(s1.decode(), [*c1[:3], c2[3]], commitment=_c(s1))


def test_key_not_on_layout_and_forged_plaintext() -> None:
    kb = _kb()
    layout = kb.open()
    pub = SERVER_KEY.public_key()
    forged = pub.encrypt(encode_keystroke(layout.session_id, 0, "5"))  # label, not a key id
    with pytest.raises(SoftKeyboardError, match="not on this keyboard"):
        kb.submit(
            layout.session_id,
            [forged],
            commitment=commit_length(layout.commit_key, layout.session_id, 1),
        )
    other_key = sm2.generate_private_key().public_key()
    wrong_key = other_key.encrypt(encode_keystroke(layout.session_id, 0, layout.keys[0][0]))
    with pytest.raises(SoftKeyboardError, match="did not decrypt"):
        kb.submit(
            layout.session_id,
            [wrong_key],
            commitment=commit_length(layout.commit_key, layout.session_id, 1),
        )


def test_too_many_bad_submissions_burn_session() -> None:
    kb = _kb()
    session, *cts = _type(kb, "9999")
    for _ in range(3):
        with pytest.raises(SoftKeyboardError):
            kb.submit(session.decode(), [b"junk"], commitment=_c(session))
    with pytest.raises(SoftKeyboardError, match="unknown, expired or already used"):
        kb.submit(session.decode(), cts, commitment=_c(session))


def test_expired_and_unknown_sessions() -> None:
    clock = FakeClock()
    kb = _kb(MemoryStore(clock=clock), ttl=60)
    session, *cts = _type(kb, "1234")
    clock.advance(60)
    with pytest.raises(SoftKeyboardError):
        kb.submit(session.decode(), cts, commitment=_c(session))
    for bad in ["", "zz" * 16, "0" * 32, "../../etc", "A" * 32]:
        with pytest.raises(SoftKeyboardError):
            kb.submit(bad, cts, commitment=_c(session))
    with pytest.raises(SoftKeyboardError):
        kb.submit(_type(kb, "1")[0].decode(), [], commitment=b"")


def test_system_keyboard_mode_is_flagged() -> None:
    kb = _kb()
    soft = kb.open()
    layout = kb.switch_to_system(soft.session_id)
    assert layout.mode is KeyboardMode.SYSTEM and layout.keys == ()
    with pytest.raises(SoftKeyboardError):
        kb.submit(soft.session_id, [b"x"], commitment=b"")  # the soft session is closed
    client = KeyboardClient(layout.client_view())
    for ch in "Abc!9":
        client.type_char(ch)
    decoded = kb.submit(layout.session_id, client.ciphertexts, commitment=client.commitment())
    assert bytes(decoded.value) == b"Abc!9" and decoded.system_keyboard
    no_system = _kb(allow_system_keyboard=False)
    with pytest.raises(SoftKeyboardError):
        no_system.open(KeyboardMode.SYSTEM)


def test_switch_refuses_a_session_that_is_not_open() -> None:
    """Issue 12 follow-up: ``switch_to_system`` used to mint a SYSTEM session for any
    well-formed id (unknown, already submitted, already switched), so a caller could "switch"
    a keyboard it never opened.  Only an open soft session may be switched, once."""
    kb = _kb()
    with pytest.raises(SoftKeyboardError):
        kb.switch_to_system("ab" * 16)  # never opened
    soft = kb.open()
    kb.switch_to_system(soft.session_id)
    with pytest.raises(SoftKeyboardError):
        kb.switch_to_system(soft.session_id)  # switched already: closed
    system = kb.open(KeyboardMode.SYSTEM)
    with pytest.raises(SoftKeyboardError):
        kb.switch_to_system(system.session_id)  # nothing to switch from
    assert kb.submit  # the system session is still usable
    client = KeyboardClient(system.client_view())
    client.type_char("a")
    assert kb.submit(system.session_id, client.ciphertexts, commitment=client.commitment())


def test_backspace_and_mask_chars() -> None:
    kb = _kb()
    layout = kb.open()
    by_label = {label: key_id for key_id, label in layout.keys}
    client = KeyboardClient(layout.client_view())
    client.press(by_label["1"])
    client.press(by_label["2"])
    assert client.backspace() == "*"
    client.press(by_label["3"])
    assert (
        bytes(
            kb.submit(layout.session_id, client.ciphertexts, commitment=client.commitment()).value
        )
        == b"13"
    )
    assert SoftKeyboard.mask(3, "#") == "###"
    with pytest.raises(ConfigurationError):
        SoftKeyboard.mask(3, "x")


def test_settings_checked() -> None:
    with pytest.raises(ConfigurationError):
        _kb(ttl=1)
    with pytest.raises(ConfigurationError):
        _kb(max_length=0)


# --------------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=string.digits + string.ascii_letters, min_size=1, max_size=16))
def test_decoded_equals_keys_pressed(text: str) -> None:
    kb = _kb()
    session, *cts = _type(kb, text, KeyboardMode.ALPHANUMERIC)
    decoded = kb.submit(session.decode(), cts, commitment=_c(session))
    assert bytes(decoded.value) == text.encode() and decoded.length == len(text)


def test_layouts_uniform_chi_square() -> None:
    """Each label is equally likely at each position, and ordered neighbour pairs are
    uniform too (catches a rotation, which has uniform marginals)."""
    kb = SoftKeyboard(MemoryStore(), SERVER_KEY)
    n = 3000
    cells: Counter[tuple[int, str]] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    sessions = set()
    key_ids: set[str] = set()
    for _ in range(n):
        layout = kb.open()
        labels = [label for _, label in layout.keys]
        sessions.add(layout.session_id)
        key_ids.update(key_id for key_id, _ in layout.keys)
        for pos, label in enumerate(labels):
            cells[(pos, label)] += 1
        pairs[(labels[0], labels[1])] += 1
    assert len(sessions) == n  # sessions never reused
    assert len(key_ids) == 10 * n  # key ids never reused
    expected = n / 10
    chi_cells = sum(
        (cells[(p, d)] - expected) ** 2 / expected for p in range(10) for d in string.digits
    )
    # df = 90; the 1e-6 upper quantile is about 169 (Wilson–Hilferty)
    assert chi_cells < 169, chi_cells
    exp_pair = n / 90
    chi_pairs = sum(
        (pairs[(a, b)] - exp_pair) ** 2 / exp_pair
        for a, b in itertools.permutations(string.digits, 2)
    )
    # df = 89; the 1e-6 upper quantile is about 168
    assert chi_pairs < 168, chi_pairs


def test_chi_square_detects_a_rotation() -> None:
    """The statistic above is not vacuous: a rotated (non-shuffled) layout fails it."""
    n = 3000
    pairs: Counter[tuple[str, str]] = Counter()
    for i in range(n):
        labels = string.digits[i % 10 :] + string.digits[: i % 10]
        pairs[(labels[0], labels[1])] += 1
    exp_pair = n / 90
    chi_pairs = sum(
        (pairs[(a, b)] - exp_pair) ** 2 / exp_pair
        for a, b in itertools.permutations(string.digits, 2)
    )
    assert chi_pairs > 168


def test_concurrent_submissions_decode_once(store_backend: StoreFactory) -> None:
    import threading

    kb = _kb(store_backend(FakeClock()))
    session, *cts = _type(kb, "802211")
    wins: list[bytes] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        with contextlib.suppress(SoftKeyboardError):
            wins.append(bytes(kb.submit(session.decode(), cts, commitment=_c(session)).value))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert wins == [b"802211"]


# --------------------------------------------------------------------------- length commitment


def test_prefix_of_the_keystrokes_is_refused() -> None:
    """Attack (issue 11 item 14): whoever relays the submission drops trailing keystrokes;
    the server accepted the prefix as a shorter input ("13579" for "135790").  The client
    commits to the length (authenticated with the session's commit key), so a shorter or
    longer submission is refused and the genuine one still decodes."""
    kb = _kb()
    layout = kb.open()
    by_label = {label: key_id for key_id, label in layout.keys}
    client = KeyboardClient(layout.client_view())
    for ch in "135790":
        client.press(by_label[ch])
    cts = client.ciphertexts
    commitment = client.commitment()
    for tampered in (cts[:-1], [*cts, cts[-1]]):  # (a third bad submission burns the session)
        with pytest.raises(SoftKeyboardError, match="length"):
            kb.submit(layout.session_id, tampered, commitment=commitment)
    with kb.submit(layout.session_id, cts, commitment=commitment) as decoded:
        assert bytes(decoded.value) == b"135790"


def test_commitment_cannot_be_forged_without_the_commit_key() -> None:
    """A relay that sees only the submission (session id, ciphertexts, commitment) cannot
    commit to a shorter input: the tag is keyed with a per-session secret that only the
    client view carries, and is bound to the session id."""
    kb = _kb()
    other = kb.open()
    forgeries = [
        lambda sid: commit_length(bytes(16), sid, 3),  # a guessed key
        lambda sid: commit_length(other.commit_key, sid, 3),  # another session's key
        lambda sid: commit_length(other.commit_key, other.session_id, 3),  # its commitment
        lambda sid: _c(sid.encode())[:-1],  # the genuine one, truncated
        lambda sid: b"",
    ]
    for forge in forgeries:
        session, *cts = _type(kb, "2468")
        sid = session.decode()
        with pytest.raises(SoftKeyboardError, match="length"):
            kb.submit(sid, cts[:3], commitment=forge(sid))
        assert bytes(kb.submit(sid, cts, commitment=_c(session)).value) == b"2468"
