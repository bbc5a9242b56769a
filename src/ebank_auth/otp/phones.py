"""Phone numbers in one spelling: E.164 (``+8613800000001``).

Every place that keys, compares or sends to a phone number (the phone registry, the
code service's cooldowns and daily caps, the gateways) goes through
:func:`normalize_phone`, so ``138 0000 0001``, ``+86-138-0000-0001`` and
``008613800000001`` are one number with one cap.  Parsing and validation use the
maintained ``phonenumbers`` library (the metadata of which number ranges exist in
each country is updated with its releases); a number it does not accept as valid is
refused with :class:`~ebank_auth.errors.EncodingError`.
"""

from __future__ import annotations

import phonenumbers

from ebank_auth.errors import EncodingError

__all__ = ["DEFAULT_REGION", "normalize_phone"]

DEFAULT_REGION = "CN"
"""Region assumed for numbers written without a country code."""

_MAX_INPUT = 64


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """``raw`` in E.164 form; :class:`EncodingError` unless it is a valid number.

    Numbers without ``+``/``00`` country code are read as numbers of ``region``.
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_INPUT:
        raise EncodingError(
            "the phone number is missing or too long: give the customer's mobile number, "
            "e.g. +8613800000001"
        )
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise EncodingError(
            "the phone number cannot be read as a phone number: correct the customer's "
            "registered number (e.g. +8613800000001)"
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise EncodingError(
            "the phone number is not a valid number in its country: correct the customer's "
            "registered number (e.g. +8613800000001)"
        )
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
