"""A key in a token container as a :class:`ebank_auth.crypto.keys.SigningKey`.

With it a certificate request, a certificate (CA), a CMS message or an audit checkpoint is
signed by a key whose private half never leaves the token::

    from ebank_auth.usbkey import TokenSigningKey, open_token

    with open_token() as token:
        token.verify_pin(pin)
        key = TokenSigningKey(token, "login")
        signature = key.sign_with(SignatureAlgorithm.SM2_SM3, data)

Only SM2 keys of *login* containers sign this way: the host computes
``e = SM3(Z_A || data)`` with the default distinguishing ID ``1234567812345678`` and the
token signs ``e``.  Transaction keys refuse host-supplied digests on purpose — they sign only
what the customer saw on the token's display (:meth:`Token.confirm_and_sign`).  Any other
algorithm raises :class:`~ebank_auth.errors.UnsupportedAlgorithm`.
"""

from __future__ import annotations

from ebank_auth.crypto import sm2
from ebank_auth.crypto.keys import PublicKey, SignatureAlgorithm, SigningKey
from ebank_auth.errors import UnsupportedAlgorithm
from ebank_auth.usbkey.protocol import DEFAULT_LOGIN_CONTAINER, check_container_name
from ebank_auth.usbkey.token import Token

__all__ = ["TokenSigningKey"]


class TokenSigningKey:
    """An SM2 key held in ``container`` of an open ``token`` (user PIN verified by the caller).

    The public key is read from the token once, when the object is made."""

    def __init__(self, token: Token, container: str = DEFAULT_LOGIN_CONTAINER) -> None:
        self._token = token
        self._container = check_container_name(container)
        key = token.public_key(self._container).public_key()
        if not isinstance(key, sm2.SM2PublicKey):
            raise UnsupportedAlgorithm(
                f"container {self._container!r} holds an RSA key: a token signing key must be "
                "an SM2 login key (generate one with usage 'login')"
            )
        self._public_key = key

    @property
    def container(self) -> str:
        return self._container

    def __repr__(self) -> str:
        return f"TokenSigningKey({self._token.description!r}, container={self._container!r})"

    def public_key(self) -> PublicKey:
        """The token key's SM2 public key."""
        return self._public_key

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        """SM2 with SM3 over the whole message ``data`` (default ID); DER ``SEQUENCE{r, s}``."""
        if algorithm is not SignatureAlgorithm.SM2_SM3:
            raise UnsupportedAlgorithm(
                f"a token SM2 key signs only with SM2-with-SM3, not {algorithm.name}"
            )
        e = sm2.compute_e(self._public_key, bytes(data), sm2.DEFAULT_UID)
        return self._token.sign_digest(e, self._container)


def _implements_signing_key(key: TokenSigningKey) -> SigningKey:
    """Never called: mypy checks here that :class:`TokenSigningKey` is a :class:`SigningKey`."""
    return key
