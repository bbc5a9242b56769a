"""A wrong path, a file that is not a shared library, a shared library that is not SKF and an
SKF library missing a function the backend needs: each is a typed SkfLibraryError (InvalidInput:
exit code 2) whose message says what to give instead."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from ebank_auth.errors import InvalidInput, SkfLibraryError, TokenError
from ebank_auth.usbkey.vendor.skf import SkfLibrary, open_skf
from usbkey.skf.conftest import SkfState


def test_wrong_path(tmp_path: Path) -> None:
    with pytest.raises(SkfLibraryError, match="no SKF library at") as err:
        SkfLibrary(tmp_path / "libvendor_skf.so")
    assert isinstance(err.value, InvalidInput) and isinstance(err.value, TokenError)
    assert err.value.code is None


def test_a_file_that_is_not_a_shared_library(tmp_path: Path) -> None:
    fake = tmp_path / "libskf.so"
    fake.write_text("this is not an ELF file\n")
    with pytest.raises(SkfLibraryError, match="cannot be loaded as a shared library"):
        SkfLibrary(fake)


def test_a_shared_library_that_is_not_skf() -> None:
    libm = ctypes.util.find_library("m")
    assert libm is not None
    with pytest.raises(SkfLibraryError, match="not a usable SKF") as err:
        open_skf(libm)
    assert "SKF_EnumDev" in str(err.value) and "SKF_ECCSignData" in str(err.value)


def test_an_skf_library_missing_a_needed_function(
    skf_libraries: dict[str, Path], skf_state: SkfState
) -> None:
    with pytest.raises(SkfLibraryError) as err:
        open_skf(skf_libraries["nosign"])
    message = str(err.value)
    assert "SKF_ECCSignData" in message
    assert "SKF_EnumDev" not in message  # only what is missing is named
