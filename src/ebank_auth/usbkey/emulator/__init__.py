"""The software token (card side) and the links that attach it to pcscd (vpcd), HID and tests."""
