"""ebank_auth.phone_shield"""
