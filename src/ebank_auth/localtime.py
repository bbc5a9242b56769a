"""Local time for rules that count by the customer's day (a leaf module anything may use).

The standards count days in local time: a daily cap on codes (OTP-2) and a login lock
"for the day" (AU-6) both end at local midnight, Asia/Shanghai unless configured.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from ebank_auth.errors import ConfigurationError

__all__ = ["DEFAULT_TIMEZONE", "day_window", "next_midnight", "resolve_timezone"]

DEFAULT_TIMEZONE = ZoneInfo("Asia/Shanghai")

_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")


def resolve_timezone(name: str) -> tzinfo:
    """An IANA zone name (``Asia/Shanghai``) or a fixed offset (``+08:00``, ``UTC+0800``)."""
    m = _OFFSET.match(name)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3))
        if hours > 14 or minutes > 59:
            raise ConfigurationError(f"timezone offset {name!r} is out of range")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown timezone {name!r}: use an IANA name such as 'Asia/Shanghai' or '+08:00'"
        ) from exc


def next_midnight(now: float, tz: tzinfo) -> datetime:
    """The local midnight that ends the day containing the Unix time ``now``."""
    nxt = (datetime.fromtimestamp(now, tz) + timedelta(days=1)).date()
    # built in the zone, so zones with and without DST both land on local 00:00
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)


def day_window(now: float, tz: tzinfo) -> tuple[str, float]:
    """(local date ``YYYY-MM-DD``, seconds until the next local midnight, at least 1)."""
    local_date = datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d")
    return local_date, max(next_midnight(now, tz).timestamp() - now, 1.0)
