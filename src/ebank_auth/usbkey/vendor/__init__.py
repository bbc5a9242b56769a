"""Backends for tokens that do not run the ebank-auth token application.

Each backend implements :class:`ebank_auth.usbkey.token.Token` where the token's interface
allows it, and raises :class:`~ebank_auth.errors.NotSupportedByToken` for what it cannot do
(e.g. confirm-and-sign without a display):

* :mod:`ebank_auth.usbkey.vendor.piv` — any PIV card (NIST SP 800-73-4) over PC/SC, with the
  YubiKey extensions when the card offers them.
* :mod:`ebank_auth.usbkey.vendor.skf` — any token through its vendor's SKF (GM/T 0016) shared
  library, loaded with cffi.
* :mod:`ebank_auth.usbkey.vendor.pkcs11` — any token behind a vendor's PKCS#11 module (on
  PyKCS11, the ``pkcs11`` extra), with the vendor's SM2 mechanisms when configured.
"""
