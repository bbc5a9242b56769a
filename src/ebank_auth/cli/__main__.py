"""``python -m ebank_auth.cli``: the same as ``python -m ebank_auth``."""

from ebank_auth.cli import main

if __name__ == "__main__":
    main()
