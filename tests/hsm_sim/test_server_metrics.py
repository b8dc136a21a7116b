"""The HSM's /metrics after a known run over real TCP and UDP sockets: exactly the commands that
were sent, by command and error code (payShield codes: NC answers ND 00, an unknown command 67,
a message without a readable command code 15), with their latencies and connections."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from hsm_sim.server import HsmServerConfig, RunningHsm, serve_hsm
from specs.metrics import HsmMetrics, serve_metrics
from tests.scrape import scrape, series, value


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    length = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(length)


@pytest.fixture
async def observed() -> AsyncIterator[tuple[RunningHsm, str]]:
    metrics = HsmMetrics()
    running = await serve_hsm(HsmServerConfig(port=0, udp_port=0, shutdown_timeout=2.0), observer=metrics)
    with serve_metrics(metrics) as server:
        yield running, server.url
    await running.close()


async def _until_no_connection(hsm: RunningHsm) -> None:
    async with asyncio.timeout(5):
        while hsm.connection_count:
            await asyncio.sleep(0.01)


async def test_scrape_counts_exactly_the_commands_sent(observed: tuple[RunningHsm, str]) -> None:
    hsm, url = observed
    reader, writer = await asyncio.open_connection("127.0.0.1", hsm.port)
    # Pipelined: 3 NC, 2 unknown XX, 1 junk without a command code.
    writer.write(frame(b"0001NC") * 3 + frame(b"0002XX") * 2 + frame(b"0003\xff\x00"))
    answers = [await asyncio.wait_for(read_frame(reader), 5) for _ in range(6)]
    assert [a[4:8] for a in answers] == [b"ND00"] * 3 + [b"XY67"] * 2 + [b"ZZ15"]
    writer.close()
    await writer.wait_closed()
    # A second client whose stream cannot be framed: "GE" declares 18245 bytes, over 8 KiB.
    bad_reader, bad_writer = await asyncio.open_connection("127.0.0.1", hsm.port)
    bad_writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(bad_reader.read(), 5) == b""
    bad_writer.close()
    # And one NC over UDP.
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.set_result(data)

    assert hsm.udp_port is not None
    udp, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", hsm.udp_port))
    udp.sendto(b"0009NC")
    assert (await asyncio.wait_for(got, 5))[4:8] == b"ND00"
    udp.close()
    await _until_no_connection(hsm)

    samples = await asyncio.to_thread(scrape, url)
    assert series(samples, "switchsim_hsm_commands_total") == {
        frozenset({("command", "NC"), ("error", "00")}): 4.0,
        frozenset({("command", "other"), ("error", "67")}): 2.0,
        frozenset({("command", "other"), ("error", "15")}): 1.0,
    }
    assert value(samples, "switchsim_hsm_command_seconds_count", command="NC") == 4
    assert value(samples, "switchsim_hsm_command_seconds_count", command="other") == 3
    # Every latency is counted at or below the largest bucket, and an in-process NC is far
    # below a second.
    assert value(samples, "switchsim_hsm_command_seconds_bucket", command="NC", le="1.0") == 4
    assert 0 < value(samples, "switchsim_hsm_command_seconds_sum", command="NC") < 1
    assert value(samples, "switchsim_hsm_connections_accepted_total") == 2
    assert value(samples, "switchsim_hsm_connections_open") == 0
    assert series(samples, "switchsim_hsm_connections_closed_total") == {
        frozenset({("reason", "closed")}): 1.0,
        frozenset({("reason", "framing")}): 1.0,
    }
    assert series(samples, "switchsim_hsm_wire_errors_total") == {frozenset({("layer", "framing")}): 1.0}


async def test_refusals_endpoint_lists_error_answers(observed: tuple[RunningHsm, str]) -> None:
    import json
    import urllib.request

    hsm, url = observed
    reader, writer = await asyncio.open_connection("127.0.0.1", hsm.port)
    writer.write(frame(b"0001NC") + frame(b"0002XX"))
    for _ in range(2):
        await asyncio.wait_for(read_frame(reader), 5)
    writer.close()

    def get() -> dict[str, list[dict[str, object]]]:
        with urllib.request.urlopen(url.replace("/metrics", "/refusals"), timeout=5) as r:
            data: dict[str, list[dict[str, object]]] = json.loads(r.read())
            return data

    refusals = (await asyncio.to_thread(get))["refusals"]
    assert [(r["kind"], r["code"]) for r in refusals] == [("other", "67")]


def test_hsm_serve_cli_serves_metrics_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchsim.cli", "hsm", "serve", "--port", "0", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        metrics_url = next(line.split()[-1] for line in lines if line.startswith("metrics on "))
        hsm_url = next(line.split()[-1] for line in lines if line.startswith("HSM listening on "))
        port = int(hsm_url.rsplit(":", 1)[1])
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(frame(b"0001NC") * 2)
            data = b""
            while data.count(b"ND00") < 2:
                chunk = sock.recv(4096)
                assert chunk
                data += chunk
        samples = scrape(metrics_url)
        assert value(samples, "switchsim_hsm_commands_total", command="NC", error="00") == 2
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
