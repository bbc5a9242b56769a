"""Fixtures for executing the documentation: a real isolated pcscd for token walk-throughs."""

from __future__ import annotations

from plugins.pcscd import pcscd_vpcd  # noqa: F401
