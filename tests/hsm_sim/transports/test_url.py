"""transport_from_url: which transport an address names, and the addresses it refuses."""

from __future__ import annotations

import pytest

from hsm_sim.server import RunningHsm
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import HsmTransport
from hsm_sim.transports.tcp import TcpTransport
from hsm_sim.transports.udp import UdpTransport
from hsm_sim.transports.url import transport_from_url
from tests.hsm_sim.transports.peers import NC_ANSWER_PREFIX


async def test_transport_from_url_inproc_answers_nc() -> None:
    transport = transport_from_url("inproc")
    assert isinstance(transport, InProcTransport)
    assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    await transport.close()


async def test_transport_from_url_tcp_and_udp(hsm: RunningHsm) -> None:
    tcp = transport_from_url(f"tcp://127.0.0.1:{hsm.port}", pool_size=2)
    udp = transport_from_url(f"udp://127.0.0.1:{hsm.udp_port}")
    assert isinstance(tcp, TcpTransport) and isinstance(udp, UdpTransport)
    transports: list[HsmTransport] = [tcp, udp]
    try:
        for t in transports:
            assert (await t.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    finally:
        for t in transports:
            await t.close()


def test_transport_from_url_defaults_port_1500() -> None:
    transport = transport_from_url("tcp://hsm.example")
    assert isinstance(transport, TcpTransport)
    assert (transport.host, transport.port) == ("hsm.example", 1500)


@pytest.mark.parametrize(
    "url",
    ["", "http://x:1", "tcp://", "tcp://h:notaport", "tcp://h:70000", "udp://h:1/path", "inproc2"],
)
def test_transport_from_url_rejects_bad_addresses(url: str) -> None:
    with pytest.raises(ValueError, match="bad HSM address"):
        transport_from_url(url)
