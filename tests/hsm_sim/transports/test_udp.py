"""UdpTransport against the real server and against a peer that drops datagrams."""

from __future__ import annotations

import asyncio

import pytest

from hsm_sim.server import RunningHsm
from hsm_sim.transports.interface import HsmTimeout, HsmUnavailable
from hsm_sim.transports.udp import UdpTransport
from tests.hsm_sim.transports.peers import NC_ANSWER_PREFIX, free_port, scripted_udp_peer


async def test_udp_request_against_the_server(hsm: RunningHsm) -> None:
    assert hsm.udp_port is not None
    async with UdpTransport("127.0.0.1", hsm.udp_port) as transport:
        answers = await asyncio.wait_for(
            asyncio.gather(*(transport.request(b"NC" if i % 2 else b"XX") for i in range(40))), 5
        )
    for i, answer in enumerate(answers):
        assert answer.startswith(NC_ANSWER_PREFIX) if i % 2 else answer == b"XY67"


async def test_udp_retries_once_with_the_same_header() -> None:
    peer, port = await scripted_udp_peer(drop=1)
    try:
        async with UdpTransport("127.0.0.1", port, timeout=0.2) as transport:
            assert await transport.request(b"NC") == b"ND00"
        assert len(peer.seen) == 2
        assert peer.seen[0] == peer.seen[1]
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_udp_times_out_after_the_retry() -> None:
    peer, port = await scripted_udp_peer(drop=10)
    try:
        async with UdpTransport("127.0.0.1", port, timeout=0.1) as transport:
            with pytest.raises(HsmTimeout, match="2 attempts"):
                await transport.request(b"NC")
        assert len(peer.seen) == 2
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_udp_concurrent_requests_get_distinct_headers() -> None:
    peer, port = await scripted_udp_peer(drop=0)
    try:
        async with UdpTransport("127.0.0.1", port) as transport:
            await asyncio.wait_for(
                asyncio.gather(*(transport.request(b"NC") for _ in range(50))), 5
            )
        headers = [d[:4] for d in peer.seen]
        assert len(set(headers)) == 50
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_udp_refused_fails_fast_as_unavailable() -> None:
    async with UdpTransport("127.0.0.1", free_port(), timeout=2.0) as transport:
        with pytest.raises(HsmUnavailable, match="refused"):
            await asyncio.wait_for(transport.request(b"NC"), 1.5)


def test_udp_needs_a_header_to_match_answers() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        UdpTransport("127.0.0.1", 1500, header_length=0)


async def test_udp_closed_transport_refuses_requests(hsm: RunningHsm) -> None:
    assert hsm.udp_port is not None
    transport = UdpTransport("127.0.0.1", hsm.udp_port)
    assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    await transport.close()
    with pytest.raises(HsmUnavailable, match="closed"):
        await transport.request(b"NC")
