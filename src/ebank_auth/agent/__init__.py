"""The local signing agent: a bank page reaches the customer's USB Key through it.

Chinese online banking reaches the customer's USB Key (U盾 / V盾) through a small program on the
customer's computer that the bank's web page talks to.  ``ebank-auth agent serve`` is that
program: an HTTP service on loopback only, answering ``fetch()`` calls from the bank origins it is
configured with, paired with the page session, and bridging to the token over PC/SC with
:func:`ebank_auth.usbkey.open_token`.  It accepts **canonical transactions only** — never a digest
— so whatever it has signed, the customer saw on the token's screen and approved with its button.

::

    from ebank_auth.agent import AgentConfig, create_agent

    agent = create_agent(AgentConfig(origins=("https://bank.example",)))
    agent.serve_forever()

The bank's server checks a login signature over exactly the bytes :func:`login_message` builds
from *its own* origin and the challenge it issued.  The HTTP contract and the security model are
in docs/agent.md.
"""

from __future__ import annotations

from .bridge import BUSY_TIMEOUT, NoLoginKey, TokenBridge, TokenSummary
from .pairing import MAX_PAIRINGS, PAIRING_IDLE_SECONDS, Pairings
from .protocol import (
    DEFAULT_AGENT_PORT,
    LOGIN_MESSAGE_PREFIX,
    MAX_BODY_BYTES,
    PROTOCOL_VERSION,
    check_origin,
    login_message,
    parse_transaction,
)
from .server import AgentConfig, AgentServer, create_agent, error_response

__all__ = [
    "BUSY_TIMEOUT",
    "DEFAULT_AGENT_PORT",
    "LOGIN_MESSAGE_PREFIX",
    "MAX_BODY_BYTES",
    "MAX_PAIRINGS",
    "PAIRING_IDLE_SECONDS",
    "PROTOCOL_VERSION",
    "AgentConfig",
    "AgentServer",
    "NoLoginKey",
    "Pairings",
    "TokenBridge",
    "TokenSummary",
    "check_origin",
    "create_agent",
    "error_response",
    "login_message",
    "parse_transaction",
]
