"""cup-pos frames made by hand, from the field encoding in ../shared/vectors/cup_pos.json, without
`specs.codec`: so a frame the codec would refuse to build (a field 60 shorter than its
subfields) can be sent, and a symmetric mistake in the codec does not hide in a test.

Field encodings used here (cup_pos.json "field_encoding"): fixed n fields BCD, right-aligned;
field 22 left-aligned with a trailing 0 nibble; LLLVAR length 2 bytes BCD counting digits for
n fields; variable n fields BCD left-aligned with a trailing 0 nibble when odd; ans/an ASCII.
"""

from __future__ import annotations

TPDU = bytes.fromhex("6000000138")
HEADER = bytes.fromhex("603100000000")


def bcd(digits: str) -> bytes:
    """Digits two to a byte, a trailing 0 nibble when odd (left-aligned)."""
    return bytes.fromhex(digits + "0" * (len(digits) % 2))


def lllvar_n(digits: str) -> bytes:
    return bcd(f"{len(digits):04d}") + bcd(digits)


def bitmap(numbers: list[int]) -> bytes:
    bits = 0
    for n in numbers:
        bits |= 1 << (64 - n)
    return bits.to_bytes(8, "big")


def body(mti: str, fields: dict[int, bytes]) -> bytes:
    """MTI (BCD) + primary bitmap + the given fields' wire bytes, in field order."""
    return bcd(mti) + bitmap(sorted(fields)) + b"".join(fields[n] for n in sorted(fields))


def frame(payload: bytes) -> bytes:
    """Length (2 bytes binary, counts what follows) + TPDU + header + body."""
    rest = TPDU + HEADER + payload
    return len(rest).to_bytes(2, "big") + rest


def network(mti: str, stan: str, terminal: str, merchant: str, field60: str) -> bytes:
    """An 0800/0820 body: 11, 41, 42 and a field 60 of any digits (well formed or not)."""
    return body(
        mti,
        {11: bcd(stan), 41: terminal.encode("ascii"), 42: merchant.encode("ascii"), 60: lllvar_n(field60)},
    )


def purchase(stan: str, terminal: str, merchant: str, field60: str) -> bytes:
    """A 0200 body with the request's mandatory fields (3, 11, 22, 25, 41, 42, 49, 60)."""
    return body(
        "0200",
        {
            3: bcd("000000"),
            4: bcd("000000000100"),
            11: bcd(stan),
            22: bcd("021"),  # left-aligned: 02 10
            25: bcd("00"),
            41: terminal.encode("ascii"),
            42: merchant.encode("ascii"),
            49: b"156",
            60: lllvar_n(field60),
        },
    )
