"""ebank_auth.usbkey"""
