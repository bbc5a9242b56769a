"""Bad input to the PKCS#11 backend ends in a typed error that says what to do: wrong module
path, a file that is not a PKCS#11 module, no token, a token whose storage vanishes
mid-operation, SM2 without (or with unknown) vendor mechanisms — and the PIN-flag mapping is
total (Hypothesis)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.errors import (
    CardNotPresent,
    ConfigurationError,
    InvalidInput,
    NotSupportedByToken,
    Pkcs11ModuleError,
)
from ebank_auth.usbkey.protocol import Algorithm, PinRef
from ebank_auth.usbkey.vendor.pkcs11 import (
    SM2_EC_PARAMS,
    Pkcs11Module,
    Sm2Mechanisms,
    Sm2SignInput,
    TokenFlag,
    load_sm2_config,
    open_pkcs11,
    pin_status_from_flags,
)

from .conftest import LABEL, USER_PIN, SoftHsm, need_pykcs11

#: a vendor's SM2 numbers (vendor-defined range); SoftHSM2 offers none of them
VENDOR_SM2 = Sm2Mechanisms(keygen=0x8000_0A01, sign=0x8000_0A02, key_type=0x8000_0A00)


def _libc() -> str:
    import ctypes.util

    name = ctypes.util.find_library("c")
    for base in (
        "/lib",
        "/usr/lib",
        "/lib64",
        "/usr/lib64",
        *map(str, Path("/lib").glob("*-linux-gnu")),
        *map(str, Path("/usr/lib").glob("*-linux-gnu")),
    ):
        if name and (Path(base) / name).is_file():
            return str(Path(base) / name)
    pytest.skip("no libc shared object found")


@pytest.fixture(autouse=True)
def _pykcs11() -> None:
    need_pykcs11()


def test_wrong_module_path(tmp_path: Path) -> None:
    with pytest.raises(Pkcs11ModuleError, match="no PKCS#11 module at"):
        Pkcs11Module(tmp_path / "missing.so")
    with pytest.raises(Pkcs11ModuleError, match="not a file"):
        Pkcs11Module(tmp_path)


def test_a_file_that_is_not_a_pkcs11_module(tmp_path: Path) -> None:
    with pytest.raises(Pkcs11ModuleError, match="not a PKCS#11 module"):
        Pkcs11Module(_libc())  # a real shared library without C_GetFunctionList
    text = tmp_path / "module.so"
    text.write_text("not a library\n")
    with pytest.raises(Pkcs11ModuleError, match="cannot be loaded"):
        open_pkcs11(text)
    assert isinstance(Pkcs11ModuleError(), InvalidInput)  # exit code 2: fix the input


def test_module_that_fails_to_initialise(
    softhsm_empty: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTHSM2_CONF", str(softhsm_empty.conf.parent / "missing.conf"))
    with pytest.raises(Pkcs11ModuleError, match="failed to initialise"):
        Pkcs11Module(softhsm_empty.module)


def test_no_token(softhsm_empty: SoftHsm) -> None:
    with Pkcs11Module(softhsm_empty.module) as module:
        [free] = module.slots()  # SoftHSM2 shows one empty, uninitialised token
        assert not module.token_info(free.slot_id).initialized
        with pytest.raises(CardNotPresent, match="no initialised token"):
            module.find_slot(None)
        with pytest.raises(CardNotPresent, match="no token labelled"):
            module.find_slot("bank")
        with pytest.raises(InvalidInput, match="no slot"):
            module.find_slot(free.slot_id + 1000)
    with pytest.raises(CardNotPresent):
        open_pkcs11(softhsm_empty.module)


def test_token_storage_removed_mid_operation(softhsm: SoftHsm) -> None:
    """SoftHSM2 keeps a token in a directory: deleting it while a session signs is the
    software stand-in for pulling the token (OpenSC's case is in test_opensc_piv.py)."""
    with open_pkcs11(softhsm.module, LABEL) as tok:
        tok.verify_pin(USER_PIN)
        tok.generate_key("login", Algorithm.ECC_P256)
        tok.sign_message(b"before", "login")
        for d in softhsm.tokens.iterdir():
            shutil.rmtree(d)
        with pytest.raises(CardNotPresent, match="went away"):
            tok.sign_message(b"after", "login")


def test_closed_token_and_module_refuse(softhsm: SoftHsm) -> None:
    tok = open_pkcs11(softhsm.module, LABEL)
    tok.close()
    tok.close()  # idempotent
    with pytest.raises(InvalidInput, match="closed"):
        tok.list_containers()
    module = Pkcs11Module(softhsm.module)
    module.close()
    with pytest.raises(InvalidInput, match="closed"):
        module.slots()


def test_sm2_needs_vendor_mechanisms(softhsm: SoftHsm) -> None:
    with open_pkcs11(softhsm.module, LABEL) as tok:
        tok.verify_pin(USER_PIN)
        with pytest.raises(NotSupportedByToken, match="no standard SM2"):
            tok.generate_key("sm2", Algorithm.SM2)
    # configured, but the module does not know the numbers: refused, nothing created
    with open_pkcs11(softhsm.module, LABEL, sm2=VENDOR_SM2) as tok:
        tok.verify_pin(USER_PIN)
        with pytest.raises(NotSupportedByToken, match="CKR_MECHANISM_INVALID"):
            tok.generate_key("sm2", Algorithm.SM2)
        assert tok.list_containers() == []
        assert not tok.device_info().capabilities & 0x0001  # no SM2 capability claimed


def test_sm2_config_file(tmp_path: Path) -> None:
    good = tmp_path / "sm2.toml"
    good.write_text(
        '[sm2]\nkeygen = 0x80000A01\nsign = "0x80000A02"\nkey_type = 2147486208\nsign_input = "digest"\n'
    )
    mech = load_sm2_config(good)
    assert (mech.keygen, mech.sign, mech.key_type) == (0x80000A01, 0x80000A02, 0x80000A00)
    assert mech.sign_input is Sm2SignInput.DIGEST and mech.ec_params == SM2_EC_PARAMS
    bad_cases = {
        "[sm2]\nkeygen = 1\nsign = 2\n": "lack",
        "[sm2]\nkeygen = 1\nsign = 2\nkey_type = 0\n": "between 1 and",
        "[sm2]\nkeygen = 1\nsign = 2\nkey_type = 3\nsign_input = 'hash'\n": "sign_input",
        "[sm2]\nkeygen = 'x1'\nsign = 2\nkey_type = 3\n": "not a number",
        "[sm2]\nkeygen = 1\nsign = 2\nkey_type = 3\nmechanism = 4\n": "unknown",
        "[sm2]\nkeygen = 1\nsign = 2\nkey_type = 3\nec_params = 'zz'\n": "hex",
        "[other]\n": r"no \[sm2\] table",
        "not toml = = \n": "not TOML",
    }
    for text, message in bad_cases.items():
        good.write_text(text)
        with pytest.raises(ConfigurationError, match=message):
            load_sm2_config(good)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_sm2_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError):
        Sm2Mechanisms(keygen=True, sign=1, key_type=1)  # type: ignore[arg-type]


_USER = (TokenFlag.USER_PIN_COUNT_LOW, TokenFlag.USER_PIN_FINAL_TRY, TokenFlag.USER_PIN_LOCKED)
_SO = (TokenFlag.SO_PIN_COUNT_LOW, TokenFlag.SO_PIN_FINAL_TRY, TokenFlag.SO_PIN_LOCKED)


@given(
    flags=st.integers(min_value=0, max_value=2**32 - 1),
    ref=st.sampled_from(PinRef),
    max_retries=st.integers(min_value=1, max_value=15),
)
def test_pin_status_mapping_is_total_and_fails_closed(
    flags: int, ref: PinRef, max_retries: int
) -> None:
    status = pin_status_from_flags(flags, ref, max_retries)
    low, final, locked = _USER if ref is PinRef.USER else _SO
    other = _SO if ref is PinRef.USER else _USER
    assert status.ref is ref and status.max_retries == max_retries
    assert 0 <= status.remaining <= max_retries
    assert status.locked == bool(flags & locked)  # locked wins over every other flag
    if not flags & locked and flags & final:
        assert status.remaining == 1
    if not flags & (low | final | locked):
        assert status.remaining == max_retries
    # the other PIN's flags never change this PIN's state
    assert pin_status_from_flags(flags & ~sum(other), ref, max_retries) == status
    # a warning flag never reports more tries than no flag
    assert (
        status.remaining
        <= pin_status_from_flags(flags & ~(low | final | locked), ref, max_retries).remaining
    )


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_pin_status_mapping_refuses_a_bad_limit(limit: object) -> None:
    with pytest.raises(ConfigurationError):
        pin_status_from_flags(0, PinRef.USER, limit)  # type: ignore[arg-type]


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("the fixtures find Linux libraries")
