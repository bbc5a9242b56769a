from ebank_auth.cli import main

main()
