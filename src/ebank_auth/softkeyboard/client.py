"""Reference client for the soft keyboard (what a page script or app does).

It knows only the session id, the key ids, the session's commit key and the
server's public key: each press is encrypted at once and only the ciphertexts and a
count are kept, so the password never exists in client memory; on submit it adds
the length commitment (:func:`~ebank_auth.softkeyboard.keyboard.commit_length`).  Used by the tests, the CLI demo and as a
model for the JavaScript / app implementations.
"""

from __future__ import annotations

from collections.abc import Mapping

from ebank_auth.crypto import sm2
from ebank_auth.errors import SoftKeyboardError
from ebank_auth.softkeyboard.keyboard import commit_length, encode_keystroke

__all__ = ["KeyboardClient"]


class KeyboardClient:
    """Collects encrypted keystrokes for one keyboard session."""

    def __init__(self, view: Mapping[str, object]) -> None:
        self.session_id = str(view["session_id"])
        self.mode = str(view["mode"])
        key_ids = view.get("key_ids", [])
        self.key_ids: tuple[str, ...] = tuple(str(k) for k in key_ids)  # type: ignore[attr-defined]
        self._pub = sm2.load_der_public_key(bytes.fromhex(str(view["public_key_der_hex"])))
        self._commit_key = bytes.fromhex(str(view.get("commit_key_hex", "")))
        self._ciphertexts: list[bytes] = []

    def press(self, key_id: str) -> str:
        """Press the key with ``key_id``; returns the mask to display."""
        if self.mode == "system":
            raise SoftKeyboardError(
                "this session uses the system keyboard: type characters instead of pressing keys"
            )
        if key_id not in self.key_ids:
            raise SoftKeyboardError("that key is not on this keyboard: press one of the keys shown")
        self._push(key_id)
        return self.mask

    def type_char(self, char: str) -> str:
        """System keyboard mode: encrypt one typed character."""
        if self.mode != "system":
            raise SoftKeyboardError(
                "this session uses the soft keyboard: press its keys instead of typing"
            )
        self._push(char)
        return self.mask

    def _push(self, value: str) -> None:
        index = len(self._ciphertexts)
        self._ciphertexts.append(self._pub.encrypt(encode_keystroke(self.session_id, index, value)))

    def backspace(self) -> str:
        if self._ciphertexts:
            self._ciphertexts.pop()
        return self.mask

    def commitment(self) -> bytes:
        """The length commitment to send with :attr:`ciphertexts` (``submit(...,
        commitment=...)``): binds the submission to exactly this many keystrokes."""
        if not self._commit_key:
            raise SoftKeyboardError("the keyboard view has no commit key: open the keyboard again")
        return commit_length(self._commit_key, self.session_id, len(self._ciphertexts))

    @property
    def mask(self) -> str:
        return "*" * len(self._ciphertexts)

    @property
    def ciphertexts(self) -> list[bytes]:
        return list(self._ciphertexts)
