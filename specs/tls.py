"""TLS for every socket the project opens: options to `ssl.SSLContext`s, and the one listener
and connector helper the switch, the HSM, the HSM client, the fleet and conformance go through.

Contexts. `ServerTls` (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``) and `ClientTls`
(``--tls``, ``--tls-ca``, ``--tls-cert``, ``--tls-key``) are frozen paths, so a config holding
them can cross a process boundary; ``context()`` reads the files and builds the context. Both
sides speak TLS 1.2 or later. A server given a client CA asks every client for a certificate
signed by it (mutual TLS) and refuses a client without one. A client always verifies the
server: its chain against ``--tls-ca`` (or the system's trust store when no CA is given) and
its name against the host it dialled, an IP address against the certificate's IP SANs (Python
has checked those since 3.7), a name against its DNS SANs. There is no switch to turn
verification off: a self-signed test set-up gives its own CA (``switchsim tls make-test-ca``
writes one whose server certificate names 127.0.0.1, ::1 and localhost). A file that cannot be
read or does not hold what it should is a `TlsConfigError` naming the file and the reason
(the CLI exits 2 on it); nothing in a file is ever quoted.

Listening. `listen` is a plain `loop.create_server` when no context is given. With one, each
accepted connection is held by a small handshake protocol until its TLS handshake is done, and
only then handed to the caller's protocol, whose ``connection_made`` sees the TLS transport. A
handshake that does not finish within ``handshake_timeout`` seconds of the accept (the
switch passes its unfinished-frame deadline), a plaintext client (its first bytes are no TLS
record) and a client the context refuses (no certificate, an unknown CA) are closed, each
with one log line naming the remote and the reason, and told to ``on_refused`` with a bounded
label; the caller's protocol never hears of them and no other connection is touched.

Connecting. `connect` is `loop.create_connection`, with the context and the dialled host as
the name to verify when TLS is on. Its failures are `OSError`s (`ssl.SSLError` is one); callers
map them at their own edge, `tls_reason` giving the short text to show.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from specs.logs import get_logger

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

# OpenSSL's reasons when the first bytes on a TLS port are not a TLS record (an ISO 8583 length
# header, an HTTP request): the client speaks plaintext.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL",
                      "PACKET_LENGTH_TOO_LONG", "RECORD_LENGTH_MISMATCH"})
PLAINTEXT = "plaintext on a TLS port"

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
_log = get_logger("specs.tls")


class TlsConfigError(ValueError):
    """A TLS file that cannot be used: which one (``what``: certificate, private key, CA), where,
    and why. A ValueError, so the CLI and the address parsers treat it as bad input."""

    def __init__(self, what: str, path: str, reason: str) -> None:
        self.what = what
        self.path = path
        self.reason = reason
        super().__init__(f"TLS {what} {path}: {reason}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTls:
    """A listener's certificate chain and key, and the CA its clients' certificates must chain
    to (mutual TLS) or None (any client may connect)."""

    cert: str
    key: str | None = None  # None: the key is in the certificate file
    client_ca: str | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MINIMUM_VERSION
        _load_chain(ctx, self.cert, self.key)
        if self.client_ca is not None:
            _load_ca(ctx, self.client_ca, "client CA")
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTls:
    """What a client trusts (``ca``; None: the system's trust store) and the certificate it
    shows when the server asks for one (mutual TLS)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None  # None with a cert: the key is in the certificate file

    def __post_init__(self) -> None:
        if self.key is not None and self.cert is None:
            raise TlsConfigError("private key", self.key, "given without a certificate (--tls-cert)")

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
        ctx.minimum_version = MINIMUM_VERSION
        if self.ca is not None:
            _load_ca(ctx, self.ca, "CA")
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.cert is not None:
            _load_chain(ctx, self.cert, self.key)
        return ctx


# -- reading the files ---------------------------------------------------------------------------


def _read(what: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(what, path, exc.strerror or type(exc).__name__) from None


def _check_certificates(what: str, path: str) -> None:
    data = _read(what, path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsConfigError(what, path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def _check_key(path: str) -> None:
    data = _read("private key", path)
    try:
        load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsConfigError("private key", path, "is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsConfigError("private key", path, "holds no usable PEM private key") from None


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str | None) -> None:
    # Checked one file at a time first: OpenSSL's own error ("PEM lib") does not say which.
    _check_certificates("certificate", cert)
    _check_key(key if key is not None else cert)
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsConfigError("private key", key or cert, f"does not match the certificate {cert}") from None
        raise TlsConfigError("certificate", cert, tls_reason(exc)) from None


def _load_ca(ctx: ssl.SSLContext, path: str, what: str) -> None:
    _check_certificates(what, path)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise TlsConfigError(what, path, tls_reason(exc)) from None


# -- reasons -------------------------------------------------------------------------------------

_SSL_TEXT = re.compile(r"^\[[^\]]*\]\s*(.*?)\s*(\(_ssl\.c:\d+\))?$")


def tls_reason(exc: BaseException) -> str:
    """A short reason for a TLS or socket failure: OpenSSL's reason code and its words
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE: peer did not return a certificate"), or a
    verification failure's message. Never holds anything the peer sent."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        words = ""
        if len(exc.args) > 1 and isinstance(exc.args[1], str):
            match = _SSL_TEXT.match(exc.args[1])
            words = match.group(1) if match else exc.args[1]
        if exc.reason and words:
            return f"{exc.reason}: {words}"
        return exc.reason or words or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def is_plaintext(exc: BaseException) -> bool:
    """True when a server's handshake failed because the client's bytes were not TLS."""
    return isinstance(exc, ssl.SSLError) and exc.reason in _NOT_TLS


# -- listening -----------------------------------------------------------------------------------


class Listener:
    """A listening socket, plain or TLS; `close` also ends the handshakes still under way."""

    __slots__ = ("_handshakes", "_server")

    def __init__(self, server: asyncio.Server, handshakes: set[_Handshake]) -> None:
        self._server = server
        self._handshakes = handshakes

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        self._server.close()
        for handshake in list(self._handshakes):
            handshake.abort()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()


class _Handshake(asyncio.Protocol):
    """Holds one accepted connection through its TLS handshake, then hands the TLS transport to
    the listener's protocol. Bytes the peer sends right after its last handshake message (before
    the hand-over) are kept and passed on in order."""

    __slots__ = ("_app", "_early", "_eof", "_factory", "_lost", "_owner", "_remote", "_task", "_transport")

    def __init__(self, owner: _TlsAccept, factory: Callable[[], asyncio.Protocol]) -> None:
        self._owner = owner
        self._factory = factory
        self._early: list[bytes] = []
        self._eof = False
        self._lost = False
        self._remote = "?"
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._app: asyncio.Protocol | None = None  # the listener's protocol, once handed over

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = f"{peer[0]}:{peer[1]}" if peer else "?"
        transport.pause_reading()  # the TLS layer reads the client's first bytes, not this protocol
        self._owner.handshakes.add(self)
        self._task = asyncio.get_running_loop().create_task(self._handshake(transport))

    def data_received(self, data: bytes) -> None:
        self._early.append(data)

    def eof_received(self) -> bool:
        self._eof = True
        return True  # the listener's protocol decides, once it has the connection

    def connection_lost(self, exc: Exception | None) -> None:
        # The TLS layer names the protocol to tell when it schedules the call: a loss scheduled
        # just before the hand-over reaches this one and is passed on.
        self._lost = True
        if self._app is not None:
            self._app.connection_lost(exc)

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    async def _handshake(self, raw: asyncio.Transport) -> None:
        owner = self._owner
        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout(owner.timeout):
                    tls = await loop.start_tls(
                        raw, self, owner.context, server_side=True, ssl_handshake_timeout=owner.timeout + 1
                    )
            except TimeoutError:
                owner.refused(self._remote, "tls_timeout", f"TLS handshake not finished within {owner.timeout:g} s")
                raw.abort()
                return
            except (OSError, EOFError) as exc:
                if is_plaintext(exc):
                    owner.refused(self._remote, "tls_plaintext", PLAINTEXT, tls_reason(exc))
                elif isinstance(exc, ConnectionError | EOFError) and not isinstance(exc, ssl.SSLError):
                    # A client that does not trust our certificate hangs up after its alert.
                    why = f"closed by the peer during the TLS handshake ({type(exc).__name__})"
                    owner.refused(self._remote, "tls_handshake", why)
                else:
                    owner.refused(self._remote, "tls_handshake", tls_reason(exc))
                raw.abort()
                return
            if tls is None or self._lost:  # the peer went away as the handshake ended
                owner.refused(self._remote, "tls_handshake", "closed by the peer during the TLS handshake")
                raw.abort()
                return
            self._hand_over(tls)
        finally:
            owner.handshakes.discard(self)

    def _hand_over(self, tls: asyncio.Transport) -> None:
        protocol = self._app = self._factory()
        tls.set_protocol(protocol)
        protocol.connection_made(tls)
        for data in self._early:
            if tls.is_closing():
                return
            protocol.data_received(data)
        self._early.clear()
        if self._eof and not tls.is_closing() and not protocol.eof_received():
            tls.close()


@dataclass(eq=False, slots=True)
class _TlsAccept:
    """What the handshakes of one TLS listener share."""

    context: ssl.SSLContext
    timeout: float
    log: Any
    on_refused: Callable[[str], None] | None
    handshakes: set[_Handshake]

    def refused(self, remote: str, label: str, reason: str, detail: str | None = None) -> None:
        self.log.warning("tls_handshake_failed", remote=remote, reason=reason, **({"ssl": detail} if detail else {}))
        if self.on_refused is not None:
            self.on_refused(label)


async def listen(
    factory: Callable[[], asyncio.Protocol],
    host: str | None,
    port: int | None,
    *,
    tls: ssl.SSLContext | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    log: Any = None,
    on_refused: Callable[[str], None] | None = None,
    **options: Any,
) -> Listener:
    """Listen on ``host:port`` (0: a free port); ``options`` go to `loop.create_server` (backlog,
    reuse_address, reuse_port, or ``sock``, a socket bound already, with host and port None).
    With ``tls``, connections reach ``factory``'s protocol only once their handshake is done
    (see the module's docstring); ``log`` is the caller's logger, so the refusal lines read as
    the server's own, and ``on_refused`` hears a label for each refusal (``tls_plaintext``,
    ``tls_timeout``, ``tls_handshake``)."""
    if not handshake_timeout > 0:
        raise ValueError(f"handshake_timeout must be more than 0 seconds, got {handshake_timeout}")
    loop = asyncio.get_running_loop()
    handshakes: set[_Handshake] = set()
    if tls is None:
        server = await loop.create_server(factory, host, port, **options)
    else:
        accept = _TlsAccept(tls, handshake_timeout, log if log is not None else _log, on_refused, handshakes)
        server = await loop.create_server(lambda: _Handshake(accept, factory), host, port, **options)
    return Listener(server, handshakes)


async def connect(
    factory: Callable[[], _P],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    handshake_timeout: float | None = None,
) -> tuple[asyncio.Transport, _P]:
    """Connect to ``host:port``, over TLS when ``tls`` is given (the server's certificate is
    verified against ``host``). Raises OSError (ssl.SSLError among them) when it cannot."""
    loop = asyncio.get_running_loop()
    if tls is None:
        return await loop.create_connection(factory, host, port)
    return await loop.create_connection(
        factory, host, port, ssl=tls, server_hostname=host, ssl_handshake_timeout=handshake_timeout
    )
