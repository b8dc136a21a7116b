"""`serve --capture FILE.pcap`: every frame in and out as a packet capture Wireshark follows.

Each connection is written as a TCP stream between its real addresses and ports: a handshake
when it opens, one segment per frame (sequence and acknowledgement numbers as the bytes go),
and a FIN each way when it closes; IPv4 or IPv6 over Ethernet. dpkt writes the format (the pcap
file header, the records, the IP and TCP checksums), so nothing here encodes a packet by hand.

Frames are masked as `trace --hex` masks them (specs/wiremask.py) unless the switch runs with
`--keep-raw`: a hidden character of a text field becomes `*`, a hidden nibble of BCD or binary
data `F`; lengths and layout stay, so the dissector still reads every field.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dpkt

from specs.codec import Codec
from specs.wiremask import masked_bytes, plan
from switch.journalwire import body_start

_WINDOW = 65535
_MAC = b"\x02\x00\x00\x00\x00"  # locally administered; the last byte tells the two sides apart


@dataclass(slots=True)
class _Stream:
    client: tuple[str, int]
    server: tuple[str, int]
    client_seq: int = 1000
    server_seq: int = 5000


class Capture:
    """A pcap file being written. Not thread-safe: the switch's event loop is its only user."""

    def __init__(self, path: str | Path, codec: Codec, *, keep_raw: bool = False) -> None:
        self._file: BinaryIO = Path(path).open("wb")  # noqa: SIM115  (closed by close())
        self._writer = dpkt.pcap.Writer(self._file, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        self._codec = codec
        self._keep_raw = keep_raw
        self._streams: dict[object, _Stream] = {}

    def opened(self, key: object, client: tuple[str, int], server: tuple[str, int]) -> None:
        stream = self._streams[key] = _Stream(client, server)
        flags = dpkt.tcp
        self._segment(stream, True, b"", flags.TH_SYN, seq=stream.client_seq - 1, ack=0)
        self._segment(stream, False, b"", flags.TH_SYN | flags.TH_ACK, seq=stream.server_seq - 1)
        self._segment(stream, True, b"", flags.TH_ACK)

    def frame(self, key: object, inbound: bool, wire: bytes) -> None:
        """One whole frame, from the terminal (``inbound``) or to it."""
        stream = self._streams.get(key)
        if stream is None:
            return
        payload = wire if self._keep_raw else self._masked(wire)
        self._segment(stream, inbound, payload, dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK)
        if inbound:
            stream.client_seq += len(payload)
        else:
            stream.server_seq += len(payload)

    def closed(self, key: object) -> None:
        stream = self._streams.pop(key, None)
        if stream is None:
            return
        fin = dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK
        self._segment(stream, False, b"", fin)
        stream.server_seq += 1
        self._segment(stream, True, b"", fin, ack=stream.server_seq)
        stream.client_seq += 1
        self._segment(stream, False, b"", dpkt.tcp.TH_ACK)

    def close(self) -> None:
        for key in list(self._streams):
            self.closed(key)
        self._file.close()

    def _masked(self, wire: bytes) -> bytes:
        start = body_start(self._codec)
        partial = self._codec.decode_partial(wire[start:])
        failed_at = None if partial.error is None else partial.end
        return masked_bytes(wire, plan(partial.message, wire, start, failed_at))

    def _segment(
        self,
        stream: _Stream,
        inbound: bool,
        payload: bytes,
        flags: int,
        *,
        seq: int | None = None,
        ack: int | None = None,
    ) -> None:
        src, dst = (stream.client, stream.server) if inbound else (stream.server, stream.client)
        own = stream.client_seq if inbound else stream.server_seq
        other = stream.server_seq if inbound else stream.client_seq
        tcp = dpkt.tcp.TCP(
            sport=src[1],
            dport=dst[1],
            seq=own if seq is None else seq,
            ack=other if ack is None else ack,
            flags=flags,
            win=_WINDOW,
            data=payload,
        )
        source, dest = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
        if source.version == 4:
            packet: dpkt.Packet = dpkt.ip.IP(
                src=source.packed, dst=dest.packed, p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=tcp
            )
            ether_type = dpkt.ethernet.ETH_TYPE_IP
        else:
            packet = dpkt.ip6.IP6(src=source.packed, dst=dest.packed, nxt=dpkt.ip.IP_PROTO_TCP, hlim=64, data=tcp)
            packet.plen = len(bytes(tcp))
            ether_type = dpkt.ethernet.ETH_TYPE_IP6
        frame = dpkt.ethernet.Ethernet(
            src=_MAC + (b"\x01" if inbound else b"\x02"),
            dst=_MAC + (b"\x02" if inbound else b"\x01"),
            type=ether_type,
            data=packet,
        )
        self._writer.writepkt(bytes(frame), ts=time.time())
        self._file.flush()
