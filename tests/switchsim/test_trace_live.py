"""`trace --follow` against a running `switchsim serve` (real sockets, child processes), and
`trace --hex`: masked by default, raw only from a switch run with `--keep-raw`."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.switch import independent
from tests.switch.pos import Pos
from tests.switchsim.cli import EXAMPLES, Serving, one_error_line, run, start

CONFIG = EXAMPLES / "switch.toml"  # declares terminal 00000764 (TMK 11..11) and card 6222021234567890123
PAN, PIN = "6222021234567890123", "123456"


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "the switch closed the connection"
        data += chunk
    return data


def _ask(conn: socket.socket, wire: bytes) -> bytes:
    conn.sendall(wire)
    head = _read(conn, 2)
    return head + _read(conn, int.from_bytes(head, "big"))


def _day(port: int) -> tuple[bytes, Pos]:
    """Sign in, operator sign-in, one purchase with PIN; returns the purchase frame as sent."""
    pos = Pos()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        pos.take_keys(pos.read(_ask(conn, pos.wire(pos.signin()))))
        assert pos.read(_ask(conn, pos.wire(pos.operator_signin("01", "0000"), mac=True)))[39] == "00"
        block = independent.card_pin_block(PIN, PAN, pos.pik).hex().upper()
        fields = {"f3": "000000", "f4": "000000000100", "f22": "021", "f25": "00", "f49": "156"}
        fields |= {"f35": f"{PAN}D30121010000", "f52": block, "f53": "2600000000000000"}
        message = pos.message("0200", "000", **fields)
        message = message.replace(f60="22" + message[60][2:])
        sent = pos.wire(message, mac=True)
        assert pos.read(_ask(conn, sent))[39] == "00"
    return sent, pos


def test_follow_shows_an_exchange_within_a_fraction_of_a_second(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Serving(["--config", str(CONFIG), "--db", str(db), "--port", "0"], tmp_path) as serving:
        argv = ["trace", "--db", str(db), "--terminal", "00000764", "--follow"]
        follower = start(argv, tmp_path)
        assert follower.stdout is not None
        lines: queue.Queue[tuple[float, str]] = queue.Queue()
        stdout = follower.stdout
        everything: list[str] = []

        def pump() -> None:
            for line in stdout:
                everything.append(line.rstrip("\n"))
                lines.put((time.monotonic(), line))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        pos = Pos()

        def exchange_seen(wire: bytes, answer: str) -> float:
            """Send a request, then wait until the follower prints its answer; the delay."""
            with socket.create_connection(("127.0.0.1", serving.port), timeout=30) as conn:
                _ask(conn, wire)
                answered_at = time.monotonic()
            deadline = answered_at + 30
            while time.monotonic() < deadline:
                try:
                    at, line = lines.get(timeout=0.5)
                except queue.Empty:
                    continue
                if answer in line:
                    return at - answered_at
            raise AssertionError("the follower never showed the answer")

        exchange_seen(pos.wire(pos.message("0820", "301")), " -> 0830 ")  # the follower is polling now
        delay = exchange_seen(pos.wire(pos.signin()), " -> 0810 848100058126002/00000764 stan=000002 39=00 ")
        follower.send_signal(signal.SIGTERM)
        # Not `finish`: communicate() would read stdout beside the pump and close it under the
        # pump, which then lost the summary line. The pump reads stdout to its end alone.
        try:
            status = follower.wait(60)
        except subprocess.TimeoutExpired:
            follower.kill()
            status = follower.wait()
        reader.join(10)
        assert follower.stderr is not None
        stderr = follower.stderr.read()
    print(f"trace --follow showed the answer {delay * 1000:.0f} ms after the terminal had it")
    assert delay < 1.0  # the journal reaches the store within 0.2 s; the follower polls every 0.05 s
    assert status == 0, stderr
    assert any(line.startswith("summary: 2 answers") for line in everything), everything


def test_hex_is_masked_and_unmasked_needs_keep_raw(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Serving(["--config", str(CONFIG), "--db", str(db), "--port", "0"], tmp_path) as serving:
        sent, pos = _day(serving.port)
    shown = run(["trace", "--db", str(db), "--terminal", "00000764", "--hex"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    hexes = [line.split("hex: ", 1)[1] for line in shown.stdout.splitlines() if line.startswith("    hex: ")]
    purchase = next(h for h in hexes if len(h) == 2 * len(sent) and h[26:30] == "0200")
    wire = sent.hex().upper()
    # the same bytes, but for hidden nibbles: track 2 (35) and the PIN block (52)
    assert all(m == w for m, w in zip(purchase, wire, strict=True) if m != "*")
    assert PAN[:12] not in purchase and PAN[-12:] not in purchase  # track 2 (35) is hidden whole
    assert pos.pik.hex().upper() not in purchase
    block = independent.card_pin_block(PIN, PAN, pos.pik).hex().upper()
    assert block in wire and block not in purchase and "*" * 16 in purchase
    refused = run(["trace", "--db", str(db), "--terminal", "00000764", "--hex", "--unmasked"], tmp_path)
    assert refused.returncode == 2
    assert one_error_line(refused, "trace").endswith("start the switch with `serve --keep-raw` (a test lab's opt-in)")


def test_keep_raw_warns_at_start_up_and_then_unmasked_hex_shows_the_frame(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    argv = ["--config", str(CONFIG), "--db", str(db), "--port", "0", "--keep-raw"]
    with Serving(argv, tmp_path) as serving:
        sent, _ = _day(serving.port)
        assert serving.line.endswith(" raw=kept")
    assert serving.result is not None
    assert "warning: --keep-raw: the journal (and a --capture) keep every frame unmasked" in serving.result.stderr
    shown = run(["trace", "--db", str(db), "--terminal", "00000764", "--hex", "--unmasked"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"    hex: {sent.hex().upper()}" in shown.stdout.splitlines()
