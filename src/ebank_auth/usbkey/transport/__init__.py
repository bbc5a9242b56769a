"""Transports to a token behind one :class:`~ebank_auth.usbkey.transport.base.Connection` interface.

``pcsc`` (pyscard) and ``hid`` (hidapi) import their hardware library only inside their own module;
importing this package imports neither.
"""

from ebank_auth.usbkey.transport.base import Connection, DeviceKind, TokenDevice

__all__ = ["Connection", "DeviceKind", "TokenDevice"]
