"""What the switch's engine costs per request, without sockets: the purchase beside an echo.

usage: python bench/engine.py [--count 4000] [--callers 80] [--rounds 3]

bench/switch_tps.py measures the whole host through TCP, with its client on the same machine;
on a shared 2-core machine its figures move by half from one run to the next. This bench calls
`SwitchEngine.handle` itself (switch/engine.py), from `--callers` tasks at once (80: the 10 x 8
of switch_tps), on the frames switch_tps sends: the server, the kernel and the client cost
nothing here. The switch is started as `serve` starts it over a SQLite file (in-process HSM,
group commit, the journal process, `--log-exchanges off`); the terminal signs in over its
socket once, then the engine is called directly, and the answers are checked (all 00) after
the clock stops.

Loads, each a round of `--count` requests with their own STANs:
  echo       cup-pos 0820 network test (60.3 = 301): decode, checks, answer, journal hand-over:
             the baseline
  purchase   0200 with PIN: MAC verify (M8), PIN verify (BC), card checks, ledger commit with the
             balance change (group commit), answer MAC (M6), journal
Printed per load, median of `--rounds`: requests a second, and CPU microseconds per request
(process time of the switch's process: the loop and the store's writer thread, not the journal
process), then purchase / echo in CPU. CPU time is what a profile cuts; wall time also holds
the waits for commits and the machine's other work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import switch_tps

from specs.framing import Frame, FrameDecoder, decode_frame
from switch.app import serve_switch
from switch.config import load_config
from switch.engine import SwitchEngine
from switchsim.journal_child import COMMAND as JOURNAL_COMMAND

FRAMING = switch_tps.CODEC.dialect.framing


def frames_of(wire: bytes) -> list[Frame]:
    decoder = FrameDecoder(FRAMING)
    decoder.feed(wire)
    frames = []
    while (event := decoder.next_event()) is not None:
        assert isinstance(event, Frame), event
        frames.append(event)
    return frames


def echoes(first_stan: int, n: int) -> list[Frame]:
    wire = b"".join(
        switch_tps.wire(
            switch_tps.CODEC.message(
                "0820",
                {11: f"{stan:06d}", 41: switch_tps.TERMINAL, 42: switch_tps.MERCHANT, 60: "00000001301"},
            )
        )
        for stan in range(first_stan, first_stan + n)
    )
    return frames_of(wire)


async def drive(engine: SwitchEngine, frames: list[Frame], callers: int) -> tuple[float, float]:
    """(requests a second, CPU microseconds a request), every answer checked to be 00."""
    pending = iter(frames)
    answers: list[bytes | None] = []

    async def caller() -> None:
        for frame in pending:
            answers.append((await engine.handle(frame, "bench")).wire)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    codes: dict[str, int] = {}  # read after the clock stops: the client's work is not the engine's
    for wire in answers:
        code = "none" if wire is None else switch_tps.CODEC.decode(decode_frame(FRAMING, wire).body).get(39) or "-"
        codes[code] = codes.get(code, 0) + 1
    assert codes == {"00": len(frames)}, codes
    return len(frames) / wall, 1e6 * cpu / len(frames)


async def run(count: int, callers: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = replace(load_config(switch_tps.write_config(tmp)), port=0, log_exchanges=False)
        running = await serve_switch(config, journal_command=JOURNAL_COMMAND)  # as `serve` runs it
        try:
            engine = running.server.engine
            pik, mak = await asyncio.to_thread(switch_tps.sign_in, running.port)
            stan = 2
            results: dict[str, list[tuple[float, float]]] = {"echo": [], "purchase": []}
            for _ in range(rounds):
                for load in results:
                    if load == "echo":
                        frames = echoes(stan, count)
                    else:
                        frames = frames_of(switch_tps.purchases(tmp / "p.frames", pik, mak, stan, count).read_bytes())
                    stan += count
                    results[load].append(await drive(engine, frames, callers))
        finally:
            await running.close()
    print(f"SwitchEngine.handle, {callers} callers, {count} requests a round, median of {rounds} rounds")
    print(f"{'load':>9} {'requests/s':>11} {'CPU us/req':>11}   rounds (CPU us)")
    cpu = {}
    for load, figures in results.items():
        cpu[load] = statistics.median(c for _, c in figures)
        rate = statistics.median(r for r, _ in figures)
        print(f"{load:>9} {rate:>11.0f} {cpu[load]:>11.1f}   {' '.join(f'{c:.1f}' for _, c in figures)}")
    print(f"purchase / echo, CPU: {cpu['purchase'] / cpu['echo']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--callers", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.callers, args.rounds))


if __name__ == "__main__":
    main()
