from plugins.pcscd import pcscd_vpcd, pcscd_vpcd_factory  # noqa: F401
