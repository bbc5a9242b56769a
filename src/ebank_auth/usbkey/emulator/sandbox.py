"""An isolated pcscd with the vpcd driver: for the demo, the bank app and the tests.

A sandbox never touches or clashes with a system pcscd, and never exposes vpcd's card port:

* pcscd gets its **own client socket** by systemd-style socket activation: a unix socket bound
  in a private temporary directory is handed over as fd 3 (``LISTEN_FDS=1``, ``LISTEN_PID``);
  PC/SC clients find it through ``PCSCLITE_CSOCK_NAME`` (:attr:`PcscSandbox.env`).
* its **own reader configuration** (``-c DIR``): one vpcd entry, two readers on two TCP ports.
* as root (when ``unshare`` works) it runs in a private **network namespace**, so vpcd's ports
  exist only on that namespace's loopback — nothing listens on the host's interfaces — and in a
  private **mount namespace** where ``/run/pcscd`` and the USB driver directory are empty tmpfs
  mounts (no clash with a system pcscd's pid file, no real USB reader grabbed).  A card reaches
  vpcd from inside the namespace: ``ebank-auth emulator start`` with :meth:`emulator_args`
  (``--netns``), or :meth:`connect_factory` for an in-process ``VpcdLink``.
  Without root vpcd listens on two free ports of the host (vpcd binds every interface there:
  :attr:`PcscSandbox.namespaced` says which case you have).

``python -m ebank_auth.usbkey.emulator.sandbox [--token-state DIR [--card MODULE:FACTORY]] --
COMMAND…`` starts a sandbox, optionally the software token in its first reader (``--card``: the
token daemon's card factory, e.g. ``ebank_auth.usbkey.emulator.screen_page:screen_token`` for
the token whose screen is a web page), runs COMMAND with ``PCSCLITE_CSOCK_NAME`` set and stops
everything afterwards; its exit code is COMMAND's.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ebank_auth.errors import TokenError
from ebank_auth.usbkey.emulator.netns import connect_in_netns
from ebank_auth.usbkey.emulator.vpcd import DEFAULT_VPCD_PORT

__all__ = [
    "READER_NAMES",
    "PcscSandbox",
    "SandboxError",
    "find_vpcd_driver",
    "listening_ports",
    "missing_parts",
    "short_tmpdir",
    "start",
]

logger = logging.getLogger("ebank_auth.usbkey.emulator.sandbox")

READER_NAMES = ("Virtual PCD 00 00", "Virtual PCD 00 01")
_DRIVER_CANDIDATES = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so",
)
# bring up loopback inside the new network namespace (no dependency on iproute2)
_LO_UP = (
    "import fcntl, socket, struct\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0)))[1]\n"
    "fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', flags | 1))\n"
)


class SandboxError(TokenError):
    """The isolated pcscd could not be started."""

    default_message = (
        "could not start an isolated pcscd: install pcscd and vsmartcard-vpcd "
        "(apt-get install pcscd vsmartcard-vpcd)"
    )


def short_tmpdir(prefix: str) -> Path:
    """A new private directory under /tmp (unix socket paths are limited to 107 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else None  # noqa: S108 - mkdtemp: private, 0700
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def find_vpcd_driver() -> str | None:
    """The vpcd driver (``EBANK_AUTH_VPCD_DRIVER`` or the Debian locations), or None."""
    override = os.environ.get("EBANK_AUTH_VPCD_DRIVER")
    if override:
        return override if os.path.exists(override) else None
    return next((p for p in _DRIVER_CANDIDATES if os.path.exists(p)), None)


def pcscd_binary() -> str | None:
    """The pcscd executable, or None."""
    return shutil.which("pcscd") or next(
        (p for p in ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd") if os.path.exists(p)), None
    )


def missing_parts() -> list[str]:
    """What is missing for a sandbox, each with how to install it (empty: all there)."""
    missing = []
    if pcscd_binary() is None:
        missing.append("pcscd (apt-get install pcscd)")
    if find_vpcd_driver() is None:
        missing.append("the vpcd driver (apt-get install vsmartcard-vpcd)")
    return missing


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
                a.bind(("0.0.0.0", port))  # noqa: S104 - probing what vpcd will bind
                b.bind(("0.0.0.0", port + 1))  # noqa: S104
        except OSError:
            continue
        return port
    raise SandboxError("no two consecutive free TCP ports for vpcd")


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process ``pid``."""
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


def can_unshare() -> bool:
    """True when this process may create network and mount namespaces (root, ``unshare``)."""
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
class PcscSandbox:
    """A running isolated pcscd with two vpcd readers.

    ``readers[i]`` is served by vpcd on TCP ``ports[i]``; :attr:`env` holds what PC/SC clients
    need (``PCSCLITE_CSOCK_NAME``).
    """

    base_dir: Path
    socket_path: Path
    config_dir: Path
    readers: list[str]
    ports: list[int]
    pid: int
    namespaced: bool
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

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
        """Arguments for ``ebank-auth emulator start`` to serve ``readers[reader]``."""
        args = ["--port", str(self.ports[reader])]
        if self.netns is not None:
            args += ["--netns", self.netns]
        return args

    def connect_factory(self, reader: int = 0) -> Callable[[], socket.socket] | None:
        """How a card reaches ``readers[reader]``'s vpcd port (``VpcdLink(connect=...)``);
        ``None`` means a plain connection to 127.0.0.1."""
        if not self.namespaced:
            return None
        port = self.ports[reader]

        def connect() -> socket.socket:  # pcscd's pid at each (re)connection: it may restart
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

    def relaunch(self) -> None:
        """Start pcscd again on the same socket, configuration and ports (after :meth:`stop`)."""
        pcscd = pcscd_binary()
        if pcscd is None:
            raise SandboxError()
        self._proc, _ = _launch(
            pcscd, self.socket_path, self.config_dir, self.base_dir, self.namespaced
        )
        self.pid = self._proc.pid
        if not wait_listening(self):
            raise SandboxError(f"pcscd did not come back; its log:\n{self.log()[-2000:]}")

    def stop(self) -> None:
        """Stop pcscd (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def close(self) -> None:
        """Stop pcscd and remove the sandbox's directory."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PcscSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    os.chmod(socket_path, 0o666)  # noqa: S103 - pcscd's client socket is world-usable by design
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


def wait_listening(svc: PcscSandbox, timeout: float = 15.0) -> bool:
    """Wait until vpcd listens on both ports (False if pcscd died or the ports were taken)."""
    proc = svc._proc
    deadline = time.monotonic() + timeout
    while proc is not None and proc.poll() is None and time.monotonic() < deadline:
        if set(svc.ports) <= listening_ports(proc.pid):
            return True
        time.sleep(0.01)
    return False


S = TypeVar("S", bound=PcscSandbox)


def start(
    socket_path: Path | None = None,
    *,
    namespaced: bool | None = None,
    attempts: int = 3,
    cls: type[S] = PcscSandbox,  # type: ignore[assignment]
    **extra: object,
) -> S:
    """Start an isolated pcscd + vpcd (``socket_path=None``: a fresh private path).

    ``namespaced=None`` isolates in namespaces whenever this process may.  ``cls``/``extra``
    let a subclass (the test plugin's) add its own fields.  Raises :class:`SandboxError`.
    """
    missing = missing_parts()
    pcscd, driver = pcscd_binary(), find_vpcd_driver()
    if missing or pcscd is None or driver is None:
        raise SandboxError("cannot start an isolated pcscd: missing " + ", ".join(missing))
    if namespaced is None:
        namespaced = can_unshare()
    base = short_tmpdir("ebank-pcscd-run-")
    if socket_path is None:
        socket_path = base / "pcscd.comm"
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
        svc = cls(
            base_dir=base,
            socket_path=socket_path,
            config_dir=config_dir,
            readers=list(READER_NAMES),
            ports=[port, port + 1],
            pid=proc.pid,
            namespaced=namespaced,
            log_path=log_path,
            _proc=proc,
            **extra,
        )
        if wait_listening(svc):
            return svc
        last_log = svc.log()
        svc.stop()
    shutil.rmtree(base, ignore_errors=True)
    raise SandboxError(f"could not start pcscd with vpcd; its last log:\n{last_log[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    """``python -m ebank_auth.usbkey.emulator.sandbox [--token-state DIR [--card SPEC]] --
    COMMAND…``."""
    from ebank_auth.usbkey.emulator import daemon  # the daemon is only needed here

    parser = argparse.ArgumentParser(
        prog="python -m ebank_auth.usbkey.emulator.sandbox",
        description="Run COMMAND against an isolated pcscd (vpcd readers), optionally with the "
        "software token inserted; everything is stopped afterwards.",
    )
    parser.add_argument("--token-state", type=Path, default=None, help="start the software token")
    parser.add_argument(
        "--card",
        default=None,
        metavar="MODULE:FACTORY",
        help="the software token's card factory (default: the token daemon's, "
        f"{daemon.DEFAULT_CARD}); needs --token-state",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the COMMAND to run after --")
    if args.card is not None and args.token_state is None:
        parser.error("--card needs --token-state (the card is the software token's)")
    try:
        svc: PcscSandbox = start()
    except SandboxError as exc:
        logger.error("%s", exc)
        return 3
    state: Path | None = args.token_state
    try:
        if not svc.namespaced:
            logger.warning(
                "not root, so pcscd runs without a private network namespace: vpcd listens on "
                "ports %d-%d of this host",
                svc.ports[0],
                svc.ports[1],
            )
        env = svc.subprocess_env()
        if state is not None:
            env["EBANK_AUTH_TOKEN_STATE"] = str(state)
            daemon.start(
                state,
                port=svc.ports[0],
                netns=svc.netns,
                env=env,
                card=args.card or daemon.DEFAULT_CARD,
            )
            # run COMMAND only once pcscd has powered the token and read its ATR
            if not daemon.wait_inserted(state, timeout=60).card_seen:
                raise SandboxError(
                    "pcscd did not take the software token within 60 s; its log:\n"
                    + svc.log()[-2000:]
                )
        return subprocess.run(command, env=env).returncode
    except TokenError as exc:
        logger.error("%s", exc)
        return 3
    finally:
        if state is not None:
            with contextlib.suppress(TokenError):
                daemon.stop(state)
        svc.close()


if __name__ == "__main__":  # pragma: no cover - run as a program
    sys.exit(main())
