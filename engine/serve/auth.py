"""Who may call the server and how big a request may be.

Keys are compared with `hmac.compare_digest` so the time a wrong key takes to reject does not
leak how many of its characters were right. Limits are checked before any model work starts.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_TOKENS_LIMIT = 4096


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """A request body over this is answered 413 before it is parsed."""
    max_tokens: int = DEFAULT_MAX_TOKENS_LIMIT
    """A request asking for more new tokens than this is answered 400."""
    default_max_tokens: int = 512
    """New tokens when a request does not say (OpenAI's own default is 'until the context ends')."""


def key_from_headers(authorization: str | None, x_api_key: str | None = None) -> str | None:
    """The key a client sent: `Authorization: Bearer KEY` (what the openai client sends) or `x-api-key`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key else None


def key_matches(sent: str | None, expected: str) -> bool:
    """Constant-time comparison of the key sent with the server's key."""
    if sent is None:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without a key: anyone on the network could use the GPU."""
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"refusing to listen on {host} without an API key: anyone who can reach this machine could use it. "
            "Pass --api-key KEY (clients send it as a Bearer token), or keep the default 127.0.0.1 and use "
            "`ssh -L PORT:127.0.0.1:PORT host` from your laptop"
        )


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address (127.0.0.0/8, ::1).

    A name is resolved and all its addresses must be loopback: a prefix test let `127.example.com`
    (any address at all) through. A name that does not resolve is not loopback.
    """
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass  # a name, not an address literal: resolve it
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0].split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
