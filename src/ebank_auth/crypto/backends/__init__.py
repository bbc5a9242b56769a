"""Crypto backends: ``openssl`` (system libcrypto 3 through cffi) and ``pure`` (Python)."""
