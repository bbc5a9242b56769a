"""Reach a vpcd that runs inside another Linux network namespace (isolated test pcscd).

An isolated pcscd (see ``tests/plugins/pcscd.py``) may run in a private network namespace, where
vpcd's listening ports exist only on that namespace's loopback.  A socket belongs to the namespace
it was *created* in, so the software token opens its vpcd connection there:

* :func:`connect_in_netns` — from any thread of a multi-threaded process: a short-lived helper
  thread switches *itself* into the namespace (``setns`` changes only the calling thread's network
  namespace), creates and connects the socket, and switches back.
* :func:`enter_netns` — move the calling thread (for a fresh single-threaded daemon: the process)
  into the namespace for good.

Linux only; needs CAP_SYS_ADMIN (root).  Errors are :class:`OSError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

__all__ = ["CLONE_NEWNET", "connect_in_netns", "enter_netns"]

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def enter_netns(path: str) -> None:
    """Switch the calling thread into the network namespace at ``path`` (``/proc/PID/ns/net``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def connect_in_netns(path: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP socket connected to ``host:port`` inside the network namespace at ``path``."""
    result: dict[str, object] = {}

    def work() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        except OSError as exc:
            result["error"] = exc
            return
        try:
            enter_netns(path)
            try:
                result["sock"] = socket.create_connection((host, port), timeout=timeout)
            finally:
                _setns(own)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)

    helper = threading.Thread(target=work, name="netns-connect", daemon=True)
    helper.start()
    helper.join()
    err = result.get("error")
    if isinstance(err, OSError):
        raise err
    sock = result.get("sock")
    if not isinstance(sock, socket.socket):
        raise OSError("connecting inside the network namespace failed")
    return sock
