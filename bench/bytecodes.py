"""The Python bytecodes one exchange costs the switch, and where they go: a profile that does not
move with the machine's load (timings on a shared 2-core VM move by 15% from run to run).

usage: python bench/bytecodes.py [iso87|purchase] [--n 2000] [--top 25] [--against REV]

The switch runs in this process (its HSM in-process, its store a scratch SQLite file); after a
warm-up of 100 exchanges a trace counts every bytecode executed on this thread while it answers
``--n`` exchanges one after another: iso87-binary 0800/301 (bench/iso87_peer.py's load) or the
cup-pos purchase with PIN (bench/switch_tps.py's, one terminal signed in first). It prints
bytecodes and calls per exchange and the functions that run the most of them (dataclass
constructors by class). What runs in C (hashing, SQLite, 3DES, bytes.hex) is not counted: this
says where the Python goes, the timing benchmarks say what it all costs.

``--against REV`` counts the same at git revision REV too (a temporary worktree of this
repository) and prints the ratio REV / this tree: the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent


def count(which: str, n: int, top: int) -> tuple[float, float, list[tuple[str, float]]]:
    """(bytecodes, calls, [(function, bytecodes)]) per exchange, for the tree on sys.path."""
    import iso87_peer
    import switch_tps

    from specs.framing import Frame, FrameDecoder
    from switch.app import serve_switch
    from switch.config import load_config

    root = str(Path(iso87_peer.__file__).resolve().parents[1]) + "/"
    totals = [0, 0]
    by: collections.Counter[str] = collections.Counter()

    def where(frame: FrameType) -> str:
        code = frame.f_code
        if code.co_filename == "<string>" and code.co_name == "__init__" and "self" in frame.f_locals:
            return f"{type(frame.f_locals['self']).__name__}.__init__ (dataclass)"
        return f"{code.co_filename.removeprefix(root)}:{code.co_firstlineno} {code.co_name}"

    def tracer(frame: FrameType, event: str, _arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            totals[0] += 1
            by[where(frame)] += 1
        elif event == "call":
            totals[1] += 1
        return tracer

    async def run() -> None:
        tmp = Path(tempfile.mkdtemp())
        config_file = iso87_peer.write_config(tmp) if which == "iso87" else switch_tps.write_config(tmp)
        config = dataclasses.replace(load_config(config_file), port=0, log_exchanges=False)
        running = await serve_switch(config)
        try:
            engine = running.server.engine
            if which == "iso87":
                load = iso87_peer.frames(tmp / "load", n + 100)
            else:
                pik, mak = await asyncio.to_thread(switch_tps.sign_in, running.port)
                load = switch_tps.purchases(tmp / "load", pik, mak, 2, n + 100)
            decoder = FrameDecoder(engine.codec.dialect.framing)
            decoder.feed(load.read_bytes())
            frames = [e for e in decoder.events() if isinstance(e, Frame)]
            for frame in frames[:100]:
                await engine.handle(frame, "bench")
            sys.settrace(tracer)
            try:
                for frame in frames[100:]:
                    await engine.handle(frame, "bench")
            finally:
                sys.settrace(None)
        finally:
            await running.close()

    asyncio.run(run())
    return totals[0] / n, totals[1] / n, [(name, c / n) for name, c in by.most_common(top)]


def at_revision(rev: str, which: str, n: int) -> tuple[float, float]:
    """Bytecodes and calls per exchange at git revision ``rev``, in a worktree of its own."""
    repo = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
        try:
            # This script, run against the other tree's modules (its own bench/ and packages).
            env = {**os.environ, "PYTHONPATH": f"{tree / 'bench'}{os.pathsep}{tree}"}
            out = subprocess.run(
                [sys.executable, __file__, which, "--n", str(n), "--top", "0", "--bare"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=tree,
            ).stdout.split()
            return float(out[0]), float(out[1])
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("load", nargs="?", choices=("iso87", "purchase"), default="iso87")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--against", metavar="REV")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # for --against
    args = parser.parse_args()
    if os.environ.get("PYTHONPATH"):  # --against: the other tree's modules, its bench/ too
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    else:
        sys.path[:0] = [str(HERE), str(HERE.parent)]
    bytecodes, calls, hottest = count(args.load, args.n, args.top)
    if args.bare:
        print(bytecodes, calls)
        return
    print(f"{args.load}: {bytecodes:.0f} bytecodes, {calls:.1f} Python calls per exchange ({args.n} exchanges)")
    for name, share in hottest:
        print(f"  {share:8.1f}  {name}")
    if args.against:
        before, before_calls = at_revision(args.against, args.load, args.n)
        print(
            f"at {args.against}: {before:.0f} bytecodes, {before_calls:.1f} calls per exchange; "
            f"{args.against} / this tree {before / bytecodes:.2f}x bytecodes, {before_calls / calls:.2f}x calls"
        )


if __name__ == "__main__":
    main()
