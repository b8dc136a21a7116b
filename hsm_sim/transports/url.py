"""Choosing a transport by its address: ``inproc``, ``tcp://host:port``, ``udp://host:port`` or
``tls://host:port[?ca=FILE&cert=FILE&key=FILE]``.

``tls://`` is TCP over TLS (specs/tls.py): ``ca`` is the CA the HSM's certificate must chain to
(without it, the system's trust store), ``cert`` and ``key`` the certificate this client shows
an HSM that asks for one (mutual TLS; ``key`` may be left out when the key is in the ``cert``
file). The files are read when the address is, so a bad one is refused before anything starts;
a path with ``&``, ``#`` or ``%`` in it is written percent-encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.hostframe import DEFAULT_HEADER_LENGTH, header_for
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import DEFAULT_PORT, DEFAULT_TIMEOUT, HsmTransport
from hsm_sim.transports.tcp import DEFAULT_POOL_SIZE, TcpTransport
from hsm_sim.transports.udp import UdpTransport
from specs.tls import ClientTls

_TLS_PARAMETERS = ("ca", "cert", "key")
_EXPECTED = "expected inproc, tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT[?ca=FILE&cert=FILE&key=FILE]"


def transport_from_url(
    url: str,
    *,
    dispatcher_factory: Callable[[], Dispatcher] = Dispatcher,
    header_length: int = DEFAULT_HEADER_LENGTH,
    pool_size: int = DEFAULT_POOL_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
) -> HsmTransport:
    """The transport ``url`` names (see the module's docstring).

    Raises ValueError naming what is wrong with ``url`` (a `TlsConfigError`, one of them, for a
    TLS file that cannot be used)."""
    if url == "inproc":
        return InProcTransport(dispatcher_factory())
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad HSM address {url!r}: {exc}") from None
    if parts.scheme not in ("tcp", "udp", "tls") or not parts.hostname:
        raise ValueError(f"bad HSM address {url!r}: {_EXPECTED}")
    if parts.path or parts.fragment or parts.username or (parts.query and parts.scheme != "tls"):
        raise ValueError(f"bad HSM address {url!r}: only scheme, host and port are allowed (and ca, cert, key "
                         "after tls://)")
    host = parts.hostname
    if parts.scheme == "udp":
        return UdpTransport(host, port or DEFAULT_PORT, header_length=header_length, timeout=timeout)
    header = header_for(0, header_length) if header_length else b""
    tls = _client_tls(url, parts.query).context() if parts.scheme == "tls" else None
    return TcpTransport(host, port or DEFAULT_PORT, header=header, pool_size=pool_size, timeout=timeout, tls=tls)


def _client_tls(url: str, query: str) -> ClientTls:
    try:
        given = parse_qs(query, keep_blank_values=True, strict_parsing=True) if query else {}
    except ValueError:
        raise ValueError(f"bad HSM address {url!r}: the part after ? must be ca=FILE&cert=FILE&key=FILE") from None
    for name, values in given.items():
        if name not in _TLS_PARAMETERS:
            raise ValueError(f"bad HSM address {url!r}: unknown parameter {name!r} (known: ca, cert, key)")
        if len(values) != 1 or not values[0]:
            raise ValueError(f"bad HSM address {url!r}: {name} must be given once, with a file name")
    return ClientTls(**{name: values[0] for name, values in given.items()})
