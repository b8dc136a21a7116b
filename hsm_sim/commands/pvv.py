"""Visa PIN Verification Value (PVV), the value DC and EC compare against."""

from __future__ import annotations

from hsm_sim.ciphers import tdes_ecb_encrypt


def visa_pvv(pvk: bytes, account: str, pvki: str, pin: str) -> str:
    """PVV of ``pin`` for the 12-digit account field (rightmost 12 PAN digits excluding the
    check digit).

    TSP = the 11 rightmost of those digits + PVKI + the 4 leftmost PIN digits, encrypted under
    the double-length PVK; then the first four decimal digits of the hex result, topped up from
    a second scan that maps the letters A-F to 0-5.
    """
    tsp = account[-11:] + pvki + pin[:4]
    digits = tdes_ecb_encrypt(pvk, bytes.fromhex(tsp)).hex().upper()
    first = [c for c in digits if c.isdigit()]
    second = [str(int(c, 16) - 10) for c in digits if not c.isdigit()]
    return "".join((first + second)[:4])
