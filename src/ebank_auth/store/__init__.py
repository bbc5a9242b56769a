"""Atomic state stores (see base.py for the primitives)."""

from ebank_auth.store.base import Clock, CounterResult, LogRecord, Store

__all__ = ["Clock", "CounterResult", "LogRecord", "Store"]
