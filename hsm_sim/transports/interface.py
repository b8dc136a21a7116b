"""What the HSM client needs from a way to reach an HSM, and how reaching it can fail.

``HsmTransport.request(command + fields)`` returns ``response code + error code + fields``:
no length prefix, no message header (a remote transport adds and strips those). ``close()``
releases whatever the transport holds (a closed remote transport refuses further requests).

Failures are typed: ``HsmUnavailable`` (cannot connect, connection lost, closed), ``HsmTimeout``
(no answer in time), ``HsmProtocolError`` (the peer answered something that is not an answer to
our request). All are ``HsmTransportError``: the one type a caller of ``hsm_sim.client`` catches
for "the HSM could not be asked".
"""

from __future__ import annotations

import os
import ssl
from typing import Protocol, runtime_checkable

from specs.tls import tls_reason

DEFAULT_PORT = 1500
DEFAULT_TIMEOUT = 2.0


@runtime_checkable
class HsmTransport(Protocol):
    async def request(self, message: bytes) -> bytes:
        """Send one host command, return its response (both without header or length)."""
        ...

    async def close(self) -> None:
        """Release connections and sockets; a remote transport then refuses requests."""
        ...


class HsmTransportError(Exception):
    """The HSM could not be asked or did not answer; says which HSM and what happened."""


class HsmUnavailable(HsmTransportError):
    """No connection to the HSM: refused, unreachable, lost, or the transport is closed."""


class HsmTimeout(HsmTransportError):
    """The HSM did not answer within the timeout."""


class HsmProtocolError(HsmTransportError):
    """The HSM sent something that is not an answer to our request (bad frame, wrong header,
    an answer to another command, a field that does not parse)."""


def os_reason(exc: BaseException) -> str:
    """A short, value-free reason for a socket failure ("Connection refused"), or a TLS one
    ("TLS: certificate verify failed: ...")."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {tls_reason(exc)}"  # its errno is OpenSSL's, not the OS's
    if isinstance(exc, OSError):
        # asyncio puts its own text in strerror ("Connect call failed ..."); the errno is clearer.
        if exc.errno:
            return os.strerror(exc.errno)
        if exc.strerror:
            return exc.strerror
    return type(exc).__name__
