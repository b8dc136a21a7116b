"""Choosing a transport by its address: ``inproc``, ``tcp://host:port`` or ``udp://host:port``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.hostframe import DEFAULT_HEADER_LENGTH, header_for
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import DEFAULT_PORT, DEFAULT_TIMEOUT, HsmTransport
from hsm_sim.transports.tcp import DEFAULT_POOL_SIZE, TcpTransport
from hsm_sim.transports.udp import UdpTransport


def transport_from_url(
    url: str,
    *,
    dispatcher_factory: Callable[[], Dispatcher] = Dispatcher,
    header_length: int = DEFAULT_HEADER_LENGTH,
    pool_size: int = DEFAULT_POOL_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
) -> HsmTransport:
    """``inproc`` (a dispatcher in this process), ``tcp://host:port`` or ``udp://host:port``.

    Raises ValueError naming what is wrong with ``url``."""
    if url == "inproc":
        return InProcTransport(dispatcher_factory())
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad HSM address {url!r}: {exc}") from None
    if parts.scheme not in ("tcp", "udp") or not parts.hostname:
        raise ValueError(
            f"bad HSM address {url!r}: expected inproc, tcp://HOST:PORT or udp://HOST:PORT"
        )
    if parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"bad HSM address {url!r}: only scheme, host and port are allowed")
    host = parts.hostname
    if parts.scheme == "tcp":
        header = header_for(0, header_length) if header_length else b""
        return TcpTransport(
            host, port or DEFAULT_PORT, header=header, pool_size=pool_size, timeout=timeout
        )
    return UdpTransport(host, port or DEFAULT_PORT, header_length=header_length, timeout=timeout)
