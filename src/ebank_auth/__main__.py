"""``python -m ebank_auth``: the ``ebank-auth`` command line."""

from ebank_auth.cli import main

if __name__ == "__main__":
    main()
