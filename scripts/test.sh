#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: set-up, lint, type check, tests.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
export EBANK_AUTH_REQUIRE_SERVICES=${EBANK_AUTH_REQUIRE_SERVICES:-1}

status=0
echo "== ruff"; .venv/bin/ruff check src tests benchmarks examples scripts || status=1
.venv/bin/ruff format --check -q src tests benchmarks examples scripts || { echo "ruff format: run .venv/bin/ruff format"; status=1; }
echo "== mypy (strict, src/)"; .venv/bin/mypy || status=1
echo "== docs (mkdocs build --strict: the site and the API reference from the docstrings)"
site=$(mktemp -d)  # not -q: with -q mkdocs drops warnings and --strict passes
.venv/bin/mkdocs build --strict --site-dir "$site" || { echo "docs: fix the warnings above"; status=1; }
rm -rf "$site"
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: treating as failure (a suite that runs nothing proves nothing)"
  rc=1
fi
[ $rc -ne 0 ] && status=$rc
exit $status
