"""Every code block in README.md and docs/ is executed, so the documentation cannot drift.

* ``python`` blocks of one file run in order in one namespace, in a fresh temporary working
  directory, like a doctest session (one test per file).  A file whose python opens a PC/SC
  reader (calls ``open_reader(…)``) gets a real, isolated pcscd with the software token in its first
  reader ("Virtual PCD 00 00"), its state in ``$EBANK_AUTH_HOME/token`` as ``ebank-auth
  emulator start`` would keep it.
* ``sh``/``bash``/``console`` blocks that call ``ebank-auth`` or ``openssl`` run in ``bash -e``
  in a fresh temporary directory, with ``ebank-auth`` from this source tree on ``PATH`` and
  ``HOME`` in the temporary directory, so the default locations are the test's own (one test
  per block).  A block that
  uses the software token (``emulator start``) gets a real, isolated pcscd + vpcd: the
  machine-level set-up lines it shows (``apt-get``, ``pip install``, ``pcscd``) are done by the
  fixture instead, and ``emulator start`` is pointed at that pcscd's private vpcd port.
* Other blocks (no language, ``toml``, diagrams, CLI synopses, output) are text.
* A block opts out only with a visible ``<!-- not-run: why -->`` line right before it;
  ``test_opt_outs_are_rare_and_explained`` lists them and caps their number.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .blocks import PYTHON, ROOT, Block, all_blocks, needs_shell_run

MAX_OPT_OUTS = 7  # keep opt-outs rare: raising this needs a reason in review (7: vendor SKF/PIV hardware, a minutes-long load run)

BLOCKS = all_blocks()
_PY_FILES = sorted(
    {b.path for b in BLOCKS if b.lang in PYTHON and b.not_run is None}, key=lambda p: str(p)
)
_SHELL = [b for b in BLOCKS if needs_shell_run(b) and b.not_run is None]


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("path", _PY_FILES, ids=_id)
def test_python_blocks(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "ebank-auth-home"
    monkeypatch.setenv("EBANK_AUTH_HOME", str(home))
    blocks = [b for b in BLOCKS if b.path == path and b.lang in PYTHON and b.not_run is None]
    with contextlib.ExitStack() as stack:
        if any("open_reader(" in b.code for b in blocks):
            from ebank_auth.usbkey.emulator.card import SoftToken
            from ebank_auth.usbkey.emulator.display import AutoApprove

            svc = request.getfixturevalue("pcscd_vpcd")
            stack.enter_context(svc.inserted(SoftToken(home / "token", AutoApprove()), reader=0))
        _run_python(path, blocks)


def _run_python(path: Path, blocks: list[Block]) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        # pad so that a traceback names the Markdown file and its real line numbers
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
        try:
            exec(code, namespace)
        except Exception as exc:
            pytest.fail(f"{block.where}: the block raised {exc!r}", pytrace=True)


def _bin_dir(tmp_path: Path) -> Path:
    """``ebank-auth`` from this source tree (not whatever the venv's entry point points at)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "ebank-auth"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ebank_auth.cli "$@"\n')
    shim.chmod(0o755)
    return bindir


def _uses_token(block: Block) -> bool:
    return "emulator start" in block.code


_TOKEN_PRELUDE = """
# set up by the test fixture instead (a private pcscd with the vpcd driver):
apt-get() { :; }
pip() { :; }
pcscd() { :; }
ebank-auth() {
  if [ "${1-}" = emulator ] && [ "${2-}" = start ]; then
    shift 2; command ebank-auth emulator start $DOCS_EMULATOR_ARGS "$@"
  else command ebank-auth "$@"; fi
}
"""


@pytest.mark.parametrize("block", _SHELL, ids=lambda b: b.where)
def test_shell_block(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    src = str(ROOT / "src")
    env = {
        **os.environ,
        "PATH": f"{_bin_dir(tmp_path)}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
        "HOME": str(tmp_path / "home"),  # so ~/.local/share/ebank-auth is the test's own
    }
    for var in (
        "XDG_DATA_HOME",
        "EBANK_AUTH_HOME",
        "EBANK_AUTH_STORE",
        "EBANK_AUTH_TOKEN_STATE",
        "EBANK_AUTH_PIN",
        "EBANK_AUTH_ADMIN_PIN",
        "EBANK_AUTH_NEW_PIN",
    ):
        env.pop(var, None)
    script = "set -eu\n"
    if _uses_token(block):
        svc = request.getfixturevalue("pcscd_vpcd")
        env.update(svc.env)
        env["DOCS_EMULATOR_ARGS"] = " ".join(shlex.quote(a) for a in svc.emulator_args(0))
        script += _TOKEN_PRELUDE
    script += block.code
    try:
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        if _uses_token(block):
            subprocess.run(
                [sys.executable, "-m", "ebank_auth.cli", "emulator", "stop"],
                env=env,
                capture_output=True,
                timeout=60,
            )
    if proc.returncode != 0:
        pytest.fail(
            f"{block.where}: the block exited {proc.returncode}\n"
            f"--- stdout\n{textwrap.shorten(proc.stdout, 4000)}\n--- stderr\n{proc.stderr[-4000:]}",
            pytrace=False,
        )


def test_opt_outs_are_rare_and_explained() -> None:
    opted = [b for b in BLOCKS if b.not_run is not None]
    for b in opted:
        assert len(b.not_run or "") >= 10, f"{b.where}: say why the block is not run"
    report = "\n".join(f"  {b.where}: {b.not_run}" for b in opted)
    print(f"\ndocs blocks not run ({len(opted)}):\n{report}")
    assert len(opted) <= MAX_OPT_OUTS, f"too many blocks opted out of execution:\n{report}"


def test_every_python_and_shell_block_is_covered() -> None:
    """No runnable-looking block silently escapes: python always runs, shell with our tools runs."""
    run = {b.where for b in _SHELL} | {b.where for b in BLOCKS if b.lang in PYTHON}
    assert len(run) >= 10, "the docs lost their examples, or the parser broke"
    for b in BLOCKS:
        if b.lang in PYTHON or needs_shell_run(b):
            assert b.where in run or b.not_run is not None
