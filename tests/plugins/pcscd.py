"""pytest plugin: a real, isolated pcscd with the vpcd driver, for end-to-end token tests.

Usage (an area conftest; ``pythonpath = ["tests"]``)::

    from plugins.pcscd import pcscd_vpcd  # noqa: F401

    def test_select(pcscd_vpcd):
        with pcscd_vpcd.attach(MyCard(), reader=0):          # card now in "Virtual PCD 00 00"
            with open_reader(pcscd_vpcd.readers[0]) as conn:  # in-process pyscard works as is
                ...
            subprocess.run(["opensc-tool", "-l"], env=pcscd_vpcd.subprocess_env())

The isolation itself lives in the library (``ebank_auth.usbkey.emulator.sandbox``, which the demo
and the bank app use too); this plugin adds the pytest fixtures, in-process card insertion and the
process-wide socket path.  Isolation (a run never touches or clashes with a system pcscd, or with
another run):

* pcscd gets its **own client socket** by systemd-style socket activation: we bind a unix
  socket in a private temp dir and hand it over as fd 3 (``LISTEN_FDS=1``, ``LISTEN_PID``);
  clients find it through ``PCSCLITE_CSOCK_NAME``.
* its **own reader config** (``-c DIR``) with one vpcd entry on two free TCP ports.
* as root (and when ``unshare`` works) it also runs in a private **network namespace** (vpcd's
  ports 35963/35964 exist only on that namespace's loopback: nothing is exposed on the host and
  nothing clashes) and a private **mount namespace** where ``/run/pcscd`` (pid file) and the USB
  driver directory are empty tmpfs mounts, so it neither overwrites a system pcscd's pid file nor
  grabs a real USB reader.  Cards reach vpcd through :meth:`PcscdVpcd.attach` (in this process)
  or ``ebank-auth emulator start *svc.emulator_args(i)`` (adds ``--netns``).  Without root:
  vpcd gets two free host ports instead.

pcsc-lite reads ``PCSCLITE_CSOCK_NAME`` **once per process, at the first PC/SC context**.  So
importing this module points the whole test process at a private socket path right away
(before any test can open a context); the session fixture then starts pcscd on exactly that path.
Without the fixture running, in-process PC/SC calls fail with ``PcscUnavailable`` — tests never
reach a system pcscd by accident.  Extra instances (``pcscd_vpcd_factory``) have other socket
paths and are for subprocess clients only (pass ``instance.subprocess_env()``).

When ``pcscd``, the vpcd driver or pyscard is missing the fixtures skip, unless
``EBANK_AUTH_REQUIRE_SERVICES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ebank_auth.usbkey.card_interface import CardProtocol
from ebank_auth.usbkey.emulator import sandbox
from ebank_auth.usbkey.emulator.sandbox import READER_NAMES, PcscSandbox, find_vpcd_driver
from ebank_auth.usbkey.emulator.vpcd import VpcdLink

__all__ = [
    "PRIMARY_SOCKET",
    "READER_NAMES",
    "PcscdVpcd",
    "find_vpcd_driver",
    "pcscd_vpcd",
    "pcscd_vpcd_factory",
    "require_pcscd",
    "start_pcscd_vpcd",
]

# --- point this process at a private pcscd socket before anything opens a PC/SC context -----
_PRIMARY_DIR = sandbox.short_tmpdir("ebank-pcscd-")
PRIMARY_SOCKET = _PRIMARY_DIR / "pcscd.comm"
os.environ["PCSCLITE_CSOCK_NAME"] = str(PRIMARY_SOCKET)
atexit.register(shutil.rmtree, _PRIMARY_DIR, True)


def require_pcscd() -> None:
    """Skip (or fail, with EBANK_AUTH_REQUIRE_SERVICES=1) when the real PC/SC stack is missing."""
    missing = sandbox.missing_parts()
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        missing.append("pyscard (pip install pyscard; needs libpcsclite-dev)")
    if missing:
        msg = "real PC/SC stack unavailable: missing " + ", ".join(missing)
        if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


@dataclass
class PcscdVpcd(PcscSandbox):
    """A sandbox plus cards inserted from this process; ``primary`` is True for the instance
    this test process's own pyscard talks to."""

    primary: bool = False
    _links: list[VpcdLink] = field(default_factory=list, repr=False)

    # -- cards ----------------------------------------------------------------------------------
    def attach(
        self, card: CardProtocol, reader: int = 0, *, wait: bool = True, timeout: float = 10.0
    ) -> VpcdLink:
        """Insert ``card`` into ``readers[reader]`` (a :class:`VpcdLink` in a thread).

        With ``wait`` it returns once pcscd sees the card.  Use the result as a context manager
        (``with svc.attach(card):``) or call :meth:`detach`; leftovers go at fixture teardown.
        """
        link = VpcdLink(card, "127.0.0.1", self.ports[reader], connect=self.connect_factory(reader))
        link.start()
        self._links.append(link)
        if wait:
            ok = link.card_seen.wait(timeout)
            if ok and self.primary:
                from ebank_auth.usbkey.transport.pcsc import wait_for_card

                ok = wait_for_card(self.readers[reader], timeout, present=True)
            if not ok:
                self.detach(link)
                raise RuntimeError(
                    f"pcscd did not see the card in {self.readers[reader]!r} within {timeout}s;"
                    f" pcscd log:\n{self.log()[-2000:]}"
                )
        return link

    def detach(self, link: VpcdLink, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Remove the card: stop its link; with ``wait`` until pcscd sees the reader empty."""
        link.stop()
        with contextlib.suppress(ValueError):
            self._links.remove(link)
        if wait and self.primary and self.running:
            from ebank_auth.usbkey.transport.pcsc import wait_for_card

            idx = self.ports.index(link.port)
            wait_for_card(self.readers[idx], timeout, present=False)

    @contextlib.contextmanager
    def inserted(self, card: CardProtocol, reader: int = 0) -> Iterator[VpcdLink]:
        """``with svc.inserted(card) as link:`` — attach, then detach and wait for removal."""
        link = self.attach(card, reader)
        try:
            yield link
        finally:
            self.detach(link)

    # -- lifecycle ------------------------------------------------------------------------------
    def restart(self) -> None:
        """Stop pcscd and start it again on the same socket path, config and ports (attached
        cards reconnect by themselves).  In-process PC/SC handles opened before become invalid."""
        links = list(self._links)
        self._links.clear()
        self.stop()
        self._links.extend(links)
        self.relaunch()
        if self.primary:
            _wait_readers(self)

    def stop(self) -> None:
        """Stop every attached card, then pcscd."""
        for link in list(self._links):
            link.stop()
        self._links.clear()
        super().stop()


def start_pcscd_vpcd(
    socket_path: Path | None = None, *, namespaced: bool | None = None, attempts: int = 3
) -> PcscdVpcd:
    """Start an isolated pcscd + vpcd.  ``socket_path=None`` makes a fresh private path (a
    secondary instance: only subprocess clients can reach it)."""
    require_pcscd()
    primary = socket_path == PRIMARY_SOCKET
    svc = sandbox.start(
        socket_path, namespaced=namespaced, attempts=attempts, cls=PcscdVpcd, primary=primary
    )
    if primary:
        _wait_readers(svc)
    return svc


def _wait_readers(svc: PcscdVpcd) -> None:
    from ebank_auth.errors import PcscUnavailable
    from ebank_auth.usbkey.transport.pcsc import list_readers

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if set(READER_NAMES) <= set(list_readers()):
                return
        except PcscUnavailable:
            pass
        time.sleep(0.01)
    raise RuntimeError(
        "pcscd readers did not appear in this process: was a PC/SC context opened before "
        "plugins.pcscd was imported (pcsc-lite caches PCSCLITE_CSOCK_NAME)?\n" + svc.log()[-2000:]
    )


def _teardown(svc: PcscdVpcd) -> None:
    svc.close()


_primary: PcscdVpcd | None = None
_primary_users = 0


@pytest.fixture(scope="session")
def pcscd_vpcd() -> Iterator[PcscdVpcd]:
    """Session-wide isolated pcscd + vpcd that this test process's pyscard talks to.

    One instance per process even when several conftests import this fixture (each import is a
    separate fixture definition to pytest): the first user starts it, the last one stops it.
    """
    global _primary, _primary_users
    if _primary is None or not _primary.running:
        _primary = start_pcscd_vpcd(PRIMARY_SOCKET)
    svc = _primary
    _primary_users += 1
    try:
        yield svc
    finally:
        _primary_users -= 1
        if _primary_users == 0:
            _primary = None
            _teardown(svc)


@pytest.fixture
def pcscd_vpcd_factory() -> Iterator[Callable[[], PcscdVpcd]]:
    """Start extra, throw-away instances (for stop/restart tests); reachable only from
    subprocesses with ``instance.subprocess_env()``.  All are stopped after the test."""
    started: list[PcscdVpcd] = []

    def make() -> PcscdVpcd:
        svc = start_pcscd_vpcd(None)
        started.append(svc)
        return svc

    try:
        yield make
    finally:
        for svc in started:
            _teardown(svc)
