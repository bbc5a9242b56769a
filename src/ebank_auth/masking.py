"""Masking of sensitive data for display, logs and the audit log (AU-12).

Each helper keeps only what a customer or operator needs to recognise the value
and replaces the rest with ``*``; lengths are kept so a masked value still looks
like what it is.  Values too short to mask safely are masked completely.  The
helpers never raise on odd input (they are used in logging paths); non-text
input is converted with ``str`` first.

=================  =============================  =====================
helper             keeps                          example
=================  =============================  =====================
mask_card          first 6 + last 4 digits        ``622202******7890``
mask_account       last 4                         ``************3210``
mask_id_number     first 3 + last 4               ``110***********123X``
mask_phone         first 3 + last 4               ``138****5678``
mask_name          last character (Chinese) /     ``*三`` / ``J*** S****``
                   initials (Latin)
mask_email         first character of the local   ``z***@example.com``
                   part, the domain
mask_balance       nothing                        ``****``
mask_secret        nothing (length only)          ``******``
=================  =============================  =====================
"""

from __future__ import annotations

__all__ = [
    "MASK",
    "mask_account",
    "mask_balance",
    "mask_card",
    "mask_email",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_secret",
]

MASK = "*"


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _keep(value: str, head: int, tail: int, min_hidden: int) -> str:
    """Keep ``head`` leading and ``tail`` trailing characters, mask the rest; if
    fewer than ``min_hidden`` characters would be hidden, reveal less."""
    n = len(value)
    if n - head - tail < min_hidden:
        # too short: reveal at most the tail, and only if enough stays hidden
        tail = min(tail, max(0, n - min_hidden))
        head = 0
        if n - tail < min_hidden:
            tail = 0
    return value[:head] + MASK * (n - head - tail) + (value[n - tail :] if tail else "")


def mask_card(number: object) -> str:
    """Bank card number: first 6 (issuer) and last 4 digits, the rest masked.
    Spaces and hyphens are removed first."""
    s = _text(number).replace(" ", "").replace("-", "")
    return _keep(s, 6, 4, 4)


def mask_account(number: object) -> str:
    """Account number: last 4 characters only."""
    s = _text(number).replace(" ", "").replace("-", "")
    return _keep(s, 0, 4, 4)


def mask_id_number(number: object) -> str:
    """Resident ID number (18 characters): first 3 and last 4 kept."""
    s = _text(number).strip()
    return _keep(s, 3, 4, 6)


def mask_phone(phone: object) -> str:
    """Mobile number: first 3 and last 4 digits (``+86`` and separators kept out)."""
    s = _text(phone).strip().replace(" ", "").replace("-", "")
    prefix = ""
    if s.startswith("+86"):
        prefix, s = "+86", s[3:]
    elif s.startswith("0086"):
        prefix, s = "0086", s[4:]
    return prefix + _keep(s, 3, 4, 4)


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or ch >= "\U00020000"


def mask_name(name: object) -> str:
    """Person's name: Chinese names keep the last character (``张三`` → ``*三``,
    ``欧阳小明`` → ``***明``); other names keep the first letter of each word."""
    s = _text(name).strip()
    if not s:
        return ""
    if any(_is_cjk(ch) for ch in s):
        if len(s) == 1:
            return MASK
        return MASK * (len(s) - 1) + s[-1]
    words = s.split()
    return " ".join(w[0] + MASK * (len(w) - 1) if len(w) > 1 else MASK for w in words)


def mask_email(email: object) -> str:
    """E-mail address: first character of the local part and the domain."""
    s = _text(email).strip()
    local, at, domain = s.rpartition("@")
    if not at or not local:
        return MASK * len(s)
    return local[0] + MASK * max(3, len(local) - 1) + "@" + domain


def mask_balance(balance: object = None) -> str:
    """Account balance: hidden completely until the customer chooses to show it."""
    return MASK * 4


def mask_secret(value: object) -> str:
    """Passwords, PINs, codes: the same number of mask characters (SK-2), nothing else."""
    return MASK * len(_text(value))
