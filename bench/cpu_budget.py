"""Where a purchase's CPU goes, process by process, and the rate that makes the ceiling.

usage: python bench/cpu_budget.py [--shared ../shared] [--count 8000] [--rounds 3] [--workers 1]

bench/switch_tps.py gives a rate; on a machine whose cores the switch shares with its client
and its journal process, a rate alone does not say what stops it. This bench drives the same
pre-encoded purchases at 10 x 8 (../shared/bench/blast.py) into `switchsim serve
--log-exchanges off` and reads, from /proc, the CPU each part spent over the run:

  loop      the switch's event loop, summed over the workers: the main thread of each
            (decode, checks, HSM in process, the store's reads, the answer, the sockets)
  threads   the switch's other threads: the store's group-commit writer, the checkpointer;
            with --workers, the supervisor too
  journal   the journal processes (switch/journalproc.py) that mask and write the journal; 0
            where `serve` writes it on the loop instead (`--workers` as many as the cores)
  client    the blast client

then the same frames into ../shared/bench/echo_limit.py, the baseline: a Python host that
answers each frame with itself. Printed, median of `--rounds`: CPU microseconds a purchase for
each part, and the two ceilings that follow from them on this machine, without any other
load: N loop threads can do at most N * 1e6 / loop purchases a second (what N workers are
held to, each loop being one thread), and the whole machine at most cores * 1e6 / total. The
ratio is the switch's CPU a request (all its processes) over the echo host's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
from pathlib import Path

import switch_tps
from harness import ROOT, blast, free_port, start_echo, start_switch, stop, wait_port

TICK = os.sysconf("SC_CLK_TCK")
PARTS = ("loop", "threads", "journal", "client")


def _seconds(stat: str) -> float:
    """utime + stime of one /proc stat line (fields 14 and 15; the name may hold spaces)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(child) for child in f.read().split()]
    return found


def _cpu(pid: int) -> dict[int, tuple[float, float]]:
    """(main thread, other threads) CPU seconds of ``pid`` and each process below it."""
    tree: dict[int, tuple[float, float]] = {}
    pending = [pid]
    while pending:
        proc = pending.pop()
        try:
            main, others = 0.0, 0.0
            for task in os.listdir(f"/proc/{proc}/task"):
                with open(f"/proc/{proc}/task/{task}/stat") as f:
                    spent = _seconds(f.read())
                if int(task) == proc:
                    main = spent
                else:
                    others += spent
            tree[proc] = (main, others)
            pending += _children(proc)
        except FileNotFoundError:  # a process that ended between two reads
            continue
    return tree


def _client_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _journal_pids(switch_pid: int, workers: int) -> set[int]:
    """The journal processes: each worker's children (with one worker, the switch's own)."""
    if workers == 1:
        return set(_children(switch_pid))
    return {child for worker in _children(switch_pid) for child in _children(worker)}


def _round(shared: Path, port: int, frames: Path, count: int, host_pid: int, workers: int) -> dict[str, float]:
    """CPU microseconds a request of each part, and the rate, over one 10 x 8 run."""
    journal = _journal_pids(host_pid, workers)
    before, client = _cpu(host_pid), _client_cpu()
    result = blast(shared, port, frames, 10, count, 8)
    after, client = _cpu(host_pid), _client_cpu() - client
    assert result["received"] == count, result
    spent = dict.fromkeys(PARTS, 0.0)
    for proc, (main, others) in after.items():
        was_main, was_others = before.get(proc, (0.0, 0.0))
        if proc in journal:
            spent["journal"] += main + others - was_main - was_others
        elif proc == host_pid and workers > 1:
            spent["threads"] += main + others - was_main - was_others  # the supervisor
        else:
            spent["loop"] += main - was_main
            spent["threads"] += others - was_others
    spent["client"] = client
    per = {part: 1e6 * seconds / count for part, seconds in spent.items()}
    per["rate"] = result["tps"]
    return per


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    shared = Path(args.shared)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        switch_port, echo_port = free_port(), free_port()
        config = switch_tps.write_config(tmp)
        switch = start_switch(config, switch_port, "--log-exchanges", "off", workers=args.workers)
        echo = start_echo(shared, echo_port)
        try:
            wait_port(switch_port)
            wait_port(echo_port)
            pik, mak = switch_tps.sign_in(switch_port)
            warm = blast(shared, switch_port, switch_tps.purchases(tmp / "warm", pik, mak, 2, 500), 4, 500)
            assert warm["received"] == 500, warm
            ours, base = [], []
            stan = 1000
            for _ in range(args.rounds):
                frames = switch_tps.purchases(tmp / "round", pik, mak, stan, args.count)
                stan += args.count
                ours.append(_round(shared, switch_port, frames, args.count, switch.pid, args.workers))
                base.append(_round(shared, echo_port, frames, args.count, echo.pid, 1))
        finally:
            stop(switch, echo)

    def median(rounds: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    print(f"CPU us a purchase at 10 x 8, {args.workers} worker(s), {cores} cores, median of {args.rounds} rounds")
    print(f"{'host':>7} {'rate/s':>7} {'loop':>6} {'threads':>7} {'journal':>7} {'client':>6} {'total':>6}")
    totals = {}
    for name, rounds in (("switch", ours), ("echo", base)):
        parts = {part: median(rounds, part) for part in PARTS}
        totals[name] = sum(parts.values())
        cells = " ".join(f"{parts[p]:>{max(6, len(p))}.0f}" for p in PARTS)
        print(f"{name:>7} {median(rounds, 'rate'):>7.0f} {cells} {totals[name]:>6.0f}")
    loop = median(ours, "loop")
    host = totals["switch"] - median(ours, "client")
    print(f"switch CPU a request (its processes) / echo host's: {host / (totals['echo'] - median(base, 'client')):.1f}")
    print(
        f"ceiling of {args.workers} loop thread(s): {args.workers * 1e6 / loop:.0f}/s; "
        f"of {cores} cores: {cores * 1e6 / totals['switch']:.0f}/s"
    )


if __name__ == "__main__":
    main()
