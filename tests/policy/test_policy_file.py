"""Policy files: bad files give clear errors naming the key and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebank_auth.errors import PolicyFileError
from ebank_auth.policy import load_policy, loads_policy
from ebank_auth.policy.loader import default_policy_text

MINIMAL = """\
[policy]
name = "t"

[operations.login]
require = [["password"]]
"""

TIERS = """\
[policy]
name = "t"

[operations.transfer]
require = [["password"]]

[amount_tiers]
operations = ["transfer"]

[[amount_tiers.tier]]
id = "low"
from = "0"
to = "{to}"
require = [["password"], ["sms_code", "usbkey_signature"]]

[[amount_tiers.tier]]
id = "high"
from = "{from_}"
require = {high}
"""


def test_default_policy_file_loads() -> None:
    policy = loads_policy(default_policy_text(), "default_policy.toml")
    assert policy.name == "ebank-auth default"


def test_minimal_policy() -> None:
    policy = loads_policy(MINIMAL)
    assert policy.tiers is None and policy.rules == ()
    assert policy.lockout.max_failures == 5


def test_load_from_file(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text(MINIMAL, encoding="utf-8")
    assert load_policy(p).name == "t"
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")
    p.write_bytes(b"\xff\xfe[policy]")
    with pytest.raises(PolicyFileError, match="not UTF-8"):
        load_policy(p)


def err(text: str) -> str:
    with pytest.raises(PolicyFileError) as info:
        loads_policy(text, "p.toml")
    return str(info.value)


def test_toml_syntax_error_names_line() -> None:
    msg = err(MINIMAL.replace('name = "t"', "name = t"))
    assert msg.startswith("p.toml:2: TOML syntax error")
    assert msg.startswith("p.toml: TOML syntax error") is False
    assert err(MINIMAL + "\nrules = [\n").startswith("p.toml: TOML syntax error")


def test_unknown_factor() -> None:
    msg = err(MINIMAL.replace('[["password"]]', '[["password", "smss_code"]]'))
    assert msg.startswith("p.toml:5: operations.login.require: unknown factor 'smss_code'")
    assert "sms_code" in msg  # lists the known ones


def test_lockout_limit_above_five() -> None:
    msg = err(MINIMAL + "\n[lockout]\nmax_failures = 6\n")
    assert msg.startswith("p.toml:8: lockout.max_failures: 6 is outside 1-5")
    assert "AU-6" in msg


@pytest.mark.parametrize(
    "extra, where, words",
    [
        ('\n[lockout]\nmax_failures = "5"\n', "p.toml:8: lockout.max_failures", "integer"),
        ("\n[lockout]\nmax_failures = 0\n", "p.toml:8: lockout.max_failures", "outside"),
        ("\n[devices]\nmax_trusted = 4\n", "p.toml:8: devices.max_trusted", "1 to 3"),
        ("\n[devices]\ntrust_days = 365\n", "p.toml:8: devices.trust_days", "1 to 180"),
        (
            '\n[devices]\nverify_with = ["sms_code"]\n',
            "p.toml:8: devices.verify_with",
            "only biometric",
        ),
        ('\n[lockout]\nnotify = ["pigeon"]\n', "p.toml:8: lockout.notify", "unknown channel"),
        ("\n[lockout]\ncolour = 1\n", "p.toml:8: lockout.colour", "unknown key"),
        (
            '\n[[rules]]\nid = "r"\nwhen = { night = false }\nrequire = [["sms_code"]]\n',
            "p.toml:9: rules[0].when.night",
            "only 'night = true'",
        ),
        (
            '\n[[rules]]\nid = "r"\nwhen = { operation = ["fly"] }\nrequire = [["sms_code"]]\n',
            "p.toml:9: rules[0].when.operation",
            "unknown value 'fly'",
        ),
        (
            '\n[[rules]]\nid = "r"\nwhen = { amount_below = "5" }\nrequire = [["sms_code"]]\n',
            "p.toml:9: rules[0].when.amount_below",
            "unknown condition",
        ),
        (
            '\n[[rules]]\nid = "r"\nwhen = { risk_at_least = 150 }\nrequire = [["sms_code"]]\n',
            "p.toml:9: rules[0].when.risk_at_least",
            "0 to 100",
        ),
        (
            '\n[[rules]]\nid = "r"\nrequire = [["sms_code"]]\nmin_factors = "two"\n',
            "p.toml:10: rules[0].min_factors",
            "integer",
        ),
        (
            '\n[[rules]]\nid = "r"\neffect = "maybe"\n',
            "p.toml:9: rules[0].effect",
            "'require' or 'deny'",
        ),
        (
            '\n[[rules]]\nid = "r"\neffect = "deny"\nrequire = [["sms_code"]]\n',
            "p.toml:10: rules[0].require",
            "cannot also require",
        ),
        (
            '\n[[rules]]\nid = "r"\nrequire = [["password"]]\nmin_classes = 4\n',
            "p.toml:10: rules[0].min_classes",
            "0 to 3",
        ),
        (
            '\n[[rules]]\nid = "Bad Id"\nrequire = [["password"]]\n',
            "p.toml:8: rules[0].id",
            "must be 1-64",
        ),
        (
            '\n[[rules]]\nid = "r"\nrequire = [["password"]]\n'
            '\n[[rules]]\nid = "r"\nrequire = [["password"]]\n',
            "p.toml:12: rules[1].id",
            "duplicate id",
        ),
        (
            '\n[[rules]]\nid = "r"\nrisk = "extreme"\nrequire = [["password"]]\n',
            "p.toml:9: rules[0].risk",
            "low, medium or high",
        ),
        (
            '\n[[rules]]\nid = "r"\nobligations = ["dance"]\n',
            "p.toml:9: rules[0].obligations",
            "unknown obligation",
        ),
        (
            '\n[[rules]]\nid = "r"\nrefs = ["AU5"]\nrequire = [["password"]]\n',
            "p.toml:9: rules[0].refs",
            "requirement ID",
        ),
        ("\n[operations.fly]\nrequire = []\n", "p.toml:7: operations.fly", "unknown operation"),
        ("\n[surprise]\n", "p.toml: surprise", "unknown key"),
    ],
)
def test_bad_entries(extra: str, where: str, words: str) -> None:
    msg = err(MINIMAL + extra)
    assert msg.startswith(where + ":"), msg
    assert words in msg


def test_missing_policy_table() -> None:
    assert "policy" in err("[operations.login]\nrequire = []\n")


def test_no_operations() -> None:
    assert "operations" in err('[policy]\nname = "t"\n')


def test_tiers_good() -> None:
    policy = loads_policy(
        TIERS.format(to="5000", from_="5000", high='[["password"], ["usbkey_signature"]]')
    )
    assert policy.tiers is not None and [t.id for t in policy.tiers.tiers] == ["low", "high"]


def test_overlapping_tiers() -> None:
    msg = err(TIERS.format(to="6000", from_="5000", high='[["password"], ["usbkey_signature"]]'))
    assert msg.startswith("p.toml:13: amount_tiers.tier[0].to:")
    assert "overlap" in msg


def test_gap_between_tiers() -> None:
    msg = err(TIERS.format(to="4000", from_="5000", high='[["password"], ["usbkey_signature"]]'))
    assert "gap between tiers" in msg and "p.toml:13" in msg


def test_higher_tier_weaker_is_refused() -> None:
    msg = err(TIERS.format(to="5000", from_="5000", high='[["password"]]'))
    assert msg.startswith("p.toml:19: amount_tiers.tier[1].require:")
    assert "weaker than the lower tier" in msg


@pytest.mark.parametrize(
    "change, words",
    [
        (('from = "0"', 'from = "10"'), "must start at 0"),
        (('from = "0"', "from = 1.5"), "wrong type|not a float|amount as a string"),
        (('to = "5000"', 'to = "abc"'), "not a number"),
        (('to = "5000"', 'to = "-1"'), "non-negative"),
        (('operations = ["transfer"]', 'operations = ["login"]'), "funds operations only"),
    ],
)
def test_bad_tier_values(change: tuple[str, str], words: str) -> None:
    text = TIERS.format(to="5000", from_="5000", high='[["password"], ["usbkey_signature"]]')
    msg = err(text.replace(*change))
    assert any(w in msg for w in words.split("|")), msg


def test_last_tier_must_be_open() -> None:
    text = TIERS.format(to="5000", from_="5000", high='[["password"], ["usbkey_signature"]]')
    msg = err(text + 'to = "9000"\n')
    assert "highest tier must have no 'to'" in msg


def test_bad_timezone_and_night() -> None:
    assert "unknown time zone" in err(
        MINIMAL.replace('name = "t"', 'name = "t"\ntimezone = "Mars/Base"')
    )
    assert "is not a time" in err(
        MINIMAL.replace('name = "t"', 'name = "t"\nnight = ["0:00", "6:00"]')
    )
    assert "must differ" in err(
        MINIMAL.replace('name = "t"', 'name = "t"\nnight = ["01:00", "01:00"]')
    )
    assert "schema 2" in err(MINIMAL.replace('name = "t"', 'name = "t"\nschema = 2'))
