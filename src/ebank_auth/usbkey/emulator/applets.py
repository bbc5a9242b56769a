"""One software token, several applications: routing APDUs to applets by AID.

A real token often carries more than one card application — a bank's own application, PIV,
FIDO (CTAP2 over NFCCTAP_MSG) — and the host picks one with ``SELECT`` by AID (ISO 7816-4
§11.2.2).  :class:`AppletRouter` does the same for the software token: it is the
:class:`~ebank_auth.usbkey.card_interface.CardProtocol` the reader sees, and it forwards every
command to the applet selected last.

Rules (as a card's OS applies them):

* ``SELECT`` by DF name (``00 A4 04 xx``) goes to the first applet whose AID starts with the
  given bytes (partial selection, so ``A0 00 00 03 08`` finds PIV); that applet answers the
  SELECT itself.  Selecting another applet first *deselects* the current one, which drops its
  volatile state (verified PINs, secure channel, pending confirmation).
* A ``SELECT`` naming no applet answers ``6A82`` and leaves nothing selected.
* Any other command goes to the selected applet; with nothing selected, to the first applet
  (the token's own application, which refuses what needs a selection).
* Power off / reset reach every applet.

Applets are objects with ``aid`` (bytes), ``process_apdu`` and the power methods; ``deselect()``
is optional (without it the router calls ``reset()``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ebank_auth.errors import ConfigurationError

__all__ = ["Applet", "AppletRouter"]

_SELECT_BY_NAME = (0x00, 0xA4, 0x04)
_FILE_NOT_FOUND = b"\x6a\x82"


@runtime_checkable
class Applet(Protocol):
    """One card application behind the router."""

    @property
    def aid(self) -> bytes:
        """The applet's application identifier."""
        ...

    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def process_apdu(self, apdu: bytes) -> bytes: ...


class AppletRouter:
    """A card made of ``applets`` (the first is the default and gives the ATR)."""

    def __init__(self, applets: Sequence[Applet]) -> None:
        if not applets:
            raise ConfigurationError("a token needs at least one applet")
        aids = [bytes(a.aid) for a in applets]
        for i, aid in enumerate(aids):
            for other in aids[i + 1 :]:
                if aid.startswith(other) or other.startswith(aid):
                    raise ConfigurationError(
                        f"applet AIDs {aid.hex()} and {other.hex()} overlap: "
                        "a partial SELECT could not tell them apart"
                    )
        self.applets: tuple[Applet, ...] = tuple(applets)
        self._selected: Applet | None = None
        self._lock = threading.RLock()

    @property
    def selected(self) -> Applet | None:
        """The applet commands go to now (``None``: nothing selected)."""
        return self._selected

    def applet(self, kind: type[object]) -> Applet:
        """The applet of class ``kind`` (tests reach the token application this way)."""
        for a in self.applets:
            if isinstance(a, kind):
                return a
        raise LookupError(f"no {kind.__name__} applet on this token")

    def __getattr__(self, name: str) -> object:
        # the default applet's attributes (e.g. ``display``) stay reachable through the router
        if name.startswith("__") or name in ("applets", "_selected", "_lock"):
            raise AttributeError(name)
        return getattr(self.applets[0], name)

    # ---------------------------------------------------------------- CardProtocol
    def atr(self) -> bytes:
        return self.applets[0].atr()

    def power_on(self) -> None:
        with self._lock:
            self._selected = None
            for a in self.applets:
                a.power_on()

    def power_off(self) -> None:
        with self._lock:
            self._selected = None
            for a in self.applets:
                a.power_off()

    def reset(self) -> None:
        with self._lock:
            self._selected = None
            for a in self.applets:
                a.reset()

    def process_apdu(self, apdu: bytes) -> bytes:
        with self._lock:
            target = self._route(bytes(apdu))
            if target is None:
                return _FILE_NOT_FOUND
            return target.process_apdu(apdu)

    def process_apdu_cancellable(self, apdu: bytes, cancelled: threading.Event) -> bytes | None:
        """:class:`~ebank_auth.usbkey.card_interface.CancellableCard` when the applet is one."""
        with self._lock:
            target = self._route(bytes(apdu))
            if target is None:
                return _FILE_NOT_FOUND
            run = getattr(target, "process_apdu_cancellable", None)
            if callable(run):
                out: bytes | None = run(apdu, cancelled)
                return out
            return target.process_apdu(apdu)

    # ---------------------------------------------------------------- routing
    def _route(self, apdu: bytes) -> Applet | None:
        """The applet ``apdu`` goes to, switching selection on SELECT by name."""
        if len(apdu) >= 5 and (apdu[0] & 0xFC, apdu[1], apdu[2]) == _SELECT_BY_NAME:
            lc = apdu[4]
            name = apdu[5 : 5 + lc] if lc else b""
            chosen = None
            if name:
                chosen = next((a for a in self.applets if a.aid.startswith(name)), None)
            if chosen is not self._selected and self._selected is not None:
                self._deselect(self._selected)
            self._selected = chosen
            if chosen is None:
                return None
            return chosen
        return self._selected if self._selected is not None else self.applets[0]

    @staticmethod
    def _deselect(applet: Applet) -> None:
        leave = getattr(applet, "deselect", None)
        if callable(leave):
            leave()
        else:
            applet.reset()
