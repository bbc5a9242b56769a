"""pytest plugin: a real, isolated pcscd with the vpcd driver, for end-to-end token tests.

Usage (an area conftest; ``pythonpath = ["tests"]``)::

    from plugins.pcscd import pcscd_vpcd  # noqa: F401

    def test_select(pcscd_vpcd):
        with pcscd_vpcd.attach(MyCard(), reader=0):          # card now in "Virtual PCD 00 00"
            with open_reader(pcscd_vpcd.readers[0]) as conn:  # in-process pyscard works as is
                ...
            subprocess.run(["opensc-tool", "-l"], env=pcscd_vpcd.subprocess_env())

Isolation (a run never touches or clashes with a system pcscd, or with another run):

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
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ebank_auth.usbkey.card_interface import CardProtocol
from ebank_auth.usbkey.emulator.netns import connect_in_netns
from ebank_auth.usbkey.emulator.vpcd import DEFAULT_VPCD_PORT, VpcdLink

__all__ = [
    "PRIMARY_SOCKET",
    "PcscdVpcd",
    "find_vpcd_driver",
    "pcscd_vpcd",
    "pcscd_vpcd_factory",
    "require_pcscd",
    "start_pcscd_vpcd",
]

READER_NAMES = ("Virtual PCD 00 00", "Virtual PCD 00 01")
_DRIVER_CANDIDATES = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so",
)


def _short_tmpdir(prefix: str) -> Path:
    # unix socket paths are limited to 107 bytes: keep the dir short
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


# --- point this process at a private pcscd socket before anything opens a PC/SC context -----
_PRIMARY_DIR = _short_tmpdir("ebank-pcscd-")
PRIMARY_SOCKET = _PRIMARY_DIR / "pcscd.comm"
os.environ["PCSCLITE_CSOCK_NAME"] = str(PRIMARY_SOCKET)
atexit.register(shutil.rmtree, _PRIMARY_DIR, True)


def find_vpcd_driver() -> str | None:
    override = os.environ.get("EBANK_AUTH_VPCD_DRIVER")
    if override:
        return override if os.path.exists(override) else None
    return next((p for p in _DRIVER_CANDIDATES if os.path.exists(p)), None)


def _pcscd_binary() -> str | None:
    return shutil.which("pcscd") or next(
        (p for p in ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd") if os.path.exists(p)), None
    )


def require_pcscd() -> tuple[str, str]:
    """(pcscd path, vpcd driver path), or skip / fail (EBANK_AUTH_REQUIRE_SERVICES=1)."""
    missing = []
    pcscd = _pcscd_binary()
    driver = find_vpcd_driver()
    if pcscd is None:
        missing.append("pcscd (apt install pcscd)")
    if driver is None:
        missing.append("the vpcd driver (apt install vsmartcard-vpcd)")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        missing.append("pyscard (pip install pyscard; needs libpcsclite-dev)")
    if missing:
        msg = "real PC/SC stack unavailable: missing " + ", ".join(missing)
        if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    assert pcscd is not None and driver is not None
    return pcscd, driver


def _free_port_pair() -> int:
    """A port p with p and p+1 both free on this host (vpcd uses one port per slot)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free TCP ports")


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of ``pid``."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "0A":
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


# bring up loopback inside the new network namespace (no dependency on iproute2)
_LO_UP = (
    "import fcntl, socket, struct\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0)))[1]\n"
    "fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', flags | 1))\n"
)


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    try:
        r = subprocess.run(
            ["unshare", "--mount", "--net", "--propagation", "private", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@dataclass
class PcscdVpcd:
    """A running isolated pcscd with two vpcd readers.

    ``readers[i]`` is served by vpcd on TCP ``ports[i]``; ``env`` holds what PC/SC clients in
    other processes need (``PCSCLITE_CSOCK_NAME``); ``primary`` is True for the instance this
    test process's own pyscard talks to.
    """

    base_dir: Path
    socket_path: Path
    config_dir: Path
    readers: list[str]
    ports: list[int]
    pid: int
    namespaced: bool
    primary: bool
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _links: list[VpcdLink] = field(default_factory=list, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` plus :attr:`env` (and ``extra``), for ``subprocess.run(env=...)``."""
        return {**os.environ, **self.env, **extra}

    @property
    def netns(self) -> str | None:
        """Path of pcscd's private network namespace (``None`` when not namespaced)."""
        return f"/proc/{self.pid}/ns/net" if self.namespaced else None

    def emulator_args(self, reader: int = 0) -> list[str]:
        """Arguments for ``ebank-auth emulator start`` to serve ``readers[reader]`` (the port,
        and the network namespace to reach it in when pcscd runs in one)."""
        args = ["--port", str(self.ports[reader])]
        if self.netns is not None:
            args += ["--netns", self.netns]
        return args

    def connect_factory(self, reader: int = 0) -> Callable[[], socket.socket] | None:
        """How a card reaches ``readers[reader]``'s vpcd port (for ``VpcdLink(connect=...)``);
        ``None`` means a plain connection to 127.0.0.1."""
        if not self.namespaced:
            return None
        port = self.ports[reader]

        def connect() -> socket.socket:
            return connect_in_netns(f"/proc/{self.pid}/ns/net", "127.0.0.1", port)

        return connect

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

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
        pcscd, _ = require_pcscd()
        links = list(self._links)
        self._links.clear()
        self.stop()
        self._links.extend(links)
        self._proc, _ = _launch(
            pcscd, self.socket_path, self.config_dir, self.base_dir, self.namespaced
        )
        self.pid = self._proc.pid
        _wait_listening(self)
        if self.primary:
            _wait_readers(self)

    def stop(self) -> None:
        """Stop pcscd (SIGTERM, then SIGKILL) after stopping every attached card."""
        for link in list(self._links):
            link.stop()
        self._links.clear()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _write_config(config_dir: Path, driver: str, port: int) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:{port}\n"
        f"LIBPATH      {driver}\n"
        f"CHANNELID    {port}\n"
    )


def _launch(
    pcscd: str, socket_path: Path, config_dir: Path, base: Path, namespaced: bool
) -> tuple[subprocess.Popen[bytes], Path]:
    """Bind the client socket, hand it to a new pcscd as fd 3 and return the process."""
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(socket_path))
    sock.listen(64)
    os.chmod(socket_path, 0o666)
    fd = sock.fileno()
    redirect = "" if fd == 3 else f" 3<&{fd} {fd}<&-"
    # dash only redirects single-digit fds; bash any
    shell = "sh" if fd < 10 else (shutil.which("bash") or "bash")
    run = f'LISTEN_PID=$$ exec "{pcscd}" --foreground -c "{config_dir}"{redirect}'
    if namespaced:
        drivers_dir = "/usr/lib/pcsc/drivers"
        hide = (
            f"mount -t tmpfs -o size=64k ebank-pcscd {drivers_dir} && "
            if os.path.isdir(drivers_dir)
            else ""
        )
        script = (
            f'set -e; "{sys.executable}" -c "$EBANK_PCSCD_LO_UP"; mkdir -p /run/pcscd; '
            "mount -t tmpfs -o size=1m,mode=0755 ebank-pcscd /run/pcscd; "
            f"{hide}{run}"
        )
        argv = ["unshare", "--mount", "--net", "--propagation", "private", shell, "-c", script]
    else:
        argv = [shell, "-c", run]
    log_path = base / "pcscd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "LISTEN_FDS": "1", "EBANK_PCSCD_LO_UP": _LO_UP},
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sock.close()
    return proc, log_path


def start_pcscd_vpcd(
    socket_path: Path | None = None, *, namespaced: bool | None = None, attempts: int = 3
) -> PcscdVpcd:
    """Start an isolated pcscd + vpcd.  ``socket_path=None`` makes a fresh private path (a
    secondary instance: only subprocess clients can reach it)."""
    pcscd, driver = require_pcscd()
    if namespaced is None:
        namespaced = _can_unshare()
    base = _short_tmpdir("ebank-pcscd-run-")
    if socket_path is None:
        socket_path = base / "pcscd.comm"
    primary = socket_path == PRIMARY_SOCKET
    if namespaced:
        # the driver dir is hidden inside the namespace: run a private copy of the driver
        local = base / "libifdvpcd.so"
        shutil.copy2(os.path.realpath(driver), local)
        driver = str(local)
    last_log = ""
    for _ in range(attempts):
        # a private network namespace has all ports free: use vpcd's defaults there
        port = DEFAULT_VPCD_PORT if namespaced else _free_port_pair()
        config_dir = base / "reader.conf.d"
        _write_config(config_dir, driver, port)
        proc, log_path = _launch(pcscd, socket_path, config_dir, base, namespaced)
        svc = PcscdVpcd(
            base_dir=base,
            socket_path=socket_path,
            config_dir=config_dir,
            readers=list(READER_NAMES),
            ports=[port, port + 1],
            pid=proc.pid,
            namespaced=namespaced,
            primary=primary,
            log_path=log_path,
            _proc=proc,
        )
        if _wait_listening(svc):
            if primary:
                _wait_readers(svc)
            return svc
        last_log = svc.log()
        svc.stop()
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"could not start pcscd with vpcd; last log:\n{last_log[-3000:]}")


def _wait_listening(svc: PcscdVpcd, timeout: float = 15.0) -> bool:
    """Wait until vpcd listens on both ports (False if pcscd died or the ports were taken)."""
    proc = svc._proc
    deadline = time.monotonic() + timeout
    while proc is not None and proc.poll() is None and time.monotonic() < deadline:
        if set(svc.ports) <= _listening_ports(proc.pid):
            return True
        time.sleep(0.01)
    return False


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
    svc.stop()
    shutil.rmtree(svc.base_dir, ignore_errors=True)


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
