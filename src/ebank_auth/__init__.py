"""ebank-auth: e-banking authentication under the Chinese standards.

Subpackages: ``crypto`` (SM2/SM3/SM4/RSA, X.509, CMS), ``usbkey`` (USB Key / V盾
tokens), ``otp``, ``softkeyboard``, ``policy``, ``audit``, ``store``.
All errors derive from :class:`ebank_auth.errors.EbankAuthError`.
"""

__version__ = "0.1.0"
