"""`serve --capture FILE.pcap`: every frame in and out, with the real addresses and ports, read back
with dpkt and (where installed) with tshark's ISO 8583 dissector; masked unless --keep-raw."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import dpkt
import pytest

from specs.codec import codec_for
from specs.framing import encode_frame
from tests.switchsim.cli import Serving

CODEC = codec_for("iso87-binary")
PAN = "6222021234567890123"
# The line docs/diagnostics.md gives for iso87 dialects with binary b fields.
TSHARK_OPTIONS = ["-o", "iso8583.len_endian:bigendian", "-o", "iso8583.charset:ascii", "-o", "iso8583.binencode:bin"]


def _frames() -> list[bytes]:
    echo = CODEC.message("0800", {7: "1201120000", 11: "000001", 70: "301"})
    auth = CODEC.message("0100", {2: PAN, 3: "000000", 4: "000000000100", 11: "000002", 14: "3012"})
    return [encode_frame(CODEC.dialect.framing, CODEC.encode(m)) for m in (echo, auth)]


def _exchange(port: int, frames: list[bytes]) -> tuple[tuple[str, int], list[bytes]]:
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        for frame in frames:
            conn.sendall(frame)
            head = conn.recv(2, socket.MSG_WAITALL)
            answers.append(head + conn.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL))
        client = conn.getsockname()
    return (client[0], client[1]), answers


def _capture(tmp_path: Path, *extra: str) -> tuple[Path, int, tuple[str, int], list[bytes], list[bytes]]:
    pcap = tmp_path / "switch.pcap"
    argv = ["--db", str(tmp_path / "s.db"), "--port", "0", "--dialect", "iso87-binary", "--capture", str(pcap)]
    with Serving([*argv, *extra], tmp_path) as serving:
        client, answers = _exchange(serving.port, _frames())
        port = serving.port
    return pcap, port, client, _frames(), answers


def _payloads(pcap: Path) -> list[tuple[str, int, str, int, int, bytes]]:
    out = []
    with pcap.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            out.append((socket.inet_ntoa(ip.src), tcp.sport, socket.inet_ntoa(ip.dst), tcp.dport, tcp.flags, tcp.data))
    return out


def test_the_capture_holds_every_frame_between_the_real_ends_masked(tmp_path: Path) -> None:
    pcap, port, client, sent, answers = _capture(tmp_path)
    packets = _payloads(pcap)
    assert packets[0][:4] == (client[0], client[1], "127.0.0.1", port) and packets[0][4] & dpkt.tcp.TH_SYN
    data = [(p[0:4], p[5]) for p in packets if p[5]]
    to_switch, to_terminal = (client[0], client[1], "127.0.0.1", port), ("127.0.0.1", port, client[0], client[1])
    assert [d[0] for d in data] == [to_switch, to_terminal, to_switch, to_terminal]
    assert data[0][1] == sent[0] and data[1][1] == answers[0]  # nothing sensitive: as sent
    masked = data[2][1]
    assert len(masked) == len(sent[1]) and PAN.encode() not in masked and b"6222020000000000123" in masked
    assert any(p[4] & dpkt.tcp.TH_FIN for p in packets)  # the stream is closed in the capture too


def test_keep_raw_captures_the_frames_unmasked(tmp_path: Path) -> None:
    pcap, _port, _client, sent, answers = _capture(tmp_path, "--keep-raw")
    data = [p[5] for p in _payloads(pcap) if p[5]]
    assert data == [sent[0], answers[0], sent[1], answers[1]]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_dissects_the_capture(tmp_path: Path) -> None:
    pcap, port, _client, _sent, _answers = _capture(tmp_path)
    fields = ["-T", "fields", "-e", "iso8583.mti", "-e", "iso8583.bit2", "-e", "iso8583.bit11"]
    argv = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},iso8583", *TSHARK_OPTIONS, *fields]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.strip()]
    assert [row[0] for row in rows] == ["0800", "0810", "0100", "0110"]
    assert rows[2][1:] == ["6222020000000000123", "000002"]  # hidden digits written as 0
