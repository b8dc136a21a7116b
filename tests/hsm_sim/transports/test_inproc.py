"""InProcTransport: the dispatcher's answer as it is, and a close that holds nothing."""

from __future__ import annotations

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import HsmTransport
from tests.hsm_sim.transports.peers import NC_ANSWER_PREFIX


def test_inproc_transport_is_an_hsm_transport() -> None:
    assert isinstance(InProcTransport(Dispatcher()), HsmTransport)


async def test_inproc_answers_unchanged_and_still_serves_after_close() -> None:
    transport = InProcTransport(Dispatcher())
    assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    assert await transport.request(b"XX") == b"XY67"  # unknown command: not licensed
    await transport.close()  # one in-process HSM may serve a switch restarted in the same test
    assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
