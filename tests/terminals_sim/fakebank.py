"""The financial side of the fake host, written from docs/financial.md: cards, PIN and MAC
checks, a journal per terminal and batch, reversals, settlement and batch upload.

It uses the shared codec, and the independent TDES and ISO 0 reading of
tests/switch/independent.py (never hsm_sim's), as the fake host does: the tests judge the
terminal against values worked out independently, not against this fake.
Balances are in cents. ``today`` is fixed (YYMM 2606) so expiry checks do not depend on the
date the tests run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specs.message import Message
from specs.testcards import DEFAULT_TEST_CARDS, CardStatus
from tests.switch.independent import ecb_decrypt, iso0_pin

TODAY_YYMM = "2606"
SUPERVISOR = "000"
# (3, 60.1) -> transaction
_KINDS = {
    ("0200", "000000", "22"): "purchase",
    ("0200", "310000", "01"): "balance",
    ("0200", "200000", "23"): "void",
    ("0220", "200000", "25"): "refund",
    ("0100", "030000", "10"): "preauth",
    ("0200", "000000", "20"): "completion",
}
_DEBITS = ("purchase", "completion")


@dataclass
class Account:
    pin: str
    expiry: str
    balance: int
    limit: int
    blocked: bool = False
    wrong_pins: int = 0


@dataclass
class Entry:
    kind: str
    terminal: str
    batch: str
    stan: str
    amount: int
    pan: str
    approved: bool
    rrn: str = ""
    auth: str = ""
    date: str = "0612"
    original: Entry | None = None
    used: int = 0  # refunded / completed
    voided: bool = False
    reversed: bool = False


def _accounts() -> dict[str, Account]:
    return {
        c.pan: Account(c.pin, c.expiry, c.balance_cents, c.limit_cents, c.status is CardStatus.BLOCKED)
        for c in DEFAULT_TEST_CARDS
    }


@dataclass
class FakeBank:
    accounts: dict[str, Account] = field(default_factory=_accounts)
    journal: list[Entry] = field(default_factory=list)
    batches: dict[str, str] = field(default_factory=dict)  # terminal -> open batch
    unknown_reversal: str = "00"
    settle_wrong: bool = False  # answer every settlement 95
    # Ways to break the contract, for the conformance tests:
    check_pin: bool = True
    check_stan: bool = True
    reverse_again: bool = False  # a repeated reversal undoes its original a second time
    rrn_counter: int = 0

    def _pan(self, req: Message) -> tuple[str | None, str]:
        """The card's PAN and a decline code ('' when 2 and 35 agree)."""
        pan = req.get(2)
        track = req.get(35)
        track_pan = track.split("D", 1)[0] if track else None
        if pan and track_pan and pan != track_pan:
            return None, "14"
        return pan or track_pan, ""

    def answer(self, req: Message, pik: bytes, operator: str | None) -> dict[int, str]:
        """The answer fields (without 64) for a financial request whose MAC verified."""
        out = {n: req[n] for n in (2, 3, 4, 11, 22, 25, 41, 42, 49, 60) if n in req}
        out.update({12: "101500", 13: "0612", 15: "0612", 32: "00010000"})
        terminal = req[41]
        batch = req.sub("60.2") or ""
        if req.mti == "0400":
            out[39] = self._reverse(req, terminal, batch)
            return out
        if req.mti == "0500":
            out[48] = req[48]
            out[39], out[48] = self._settle(req, terminal, batch)
            return out
        if req.mti == "0320":
            out.pop(2, None)
            out[39] = self._upload(req, terminal, batch)
            return out
        kind = _KINDS.get((req.mti, req.get(3) or "", req.sub("60.1") or ""))
        if kind is None:
            out[39] = "12"
            return out
        if self.check_stan and any(e.terminal == terminal and e.batch == batch and e.stan == req[11]
                                   for e in self.journal):
            out[39] = "94"
            return out
        code, entry = self._transaction(kind, req, pik, operator, terminal, batch)
        out[39] = code
        out.pop(2, None)
        if entry is not None:
            out[37] = entry.rrn
            if code == "00":
                out[38] = entry.auth
        if kind == "balance" and code == "00":
            pan, _ = self._pan(req)
            assert pan is not None
            balance = self.accounts[pan].balance
            out[54] = f"1002156{'C' if balance >= 0 else 'D'}{abs(balance):012d}"
        return out

    def _transaction(self, kind: str, req: Message, pik: bytes, operator: str | None,
                     terminal: str, batch: str) -> tuple[str, Entry | None]:
        pan, bad = self._pan(req)
        account = self.accounts.get(pan or "")
        amount = int(req.get(4) or "0")
        self.rrn_counter += 1
        entry = Entry(kind, terminal, batch, req[11], amount, pan or "", False,
                      rrn=f"{self.rrn_counter:012d}", auth=f"A{self.rrn_counter:05d}")
        self.journal.append(entry)
        if bad or pan is None or account is None or account.blocked:
            return "14", entry
        if account.expiry < TODAY_YYMM:
            return "54", entry
        if kind in ("void", "refund") and operator != SUPERVISOR:
            return "58", entry
        if 52 in req and self.check_pin:
            code = self._pin(req, pik, pan, account)
            if code:
                return code, entry
        if kind == "balance":
            entry.approved = True
            return "00", entry
        if amount <= 0:
            return "13", entry
        original = None
        if kind in ("void", "refund", "completion"):
            original = self._original(kind, req, terminal)
            if original is None:
                return "25", entry
            left = original.amount - original.used
            if (kind == "void" and amount != original.amount) or amount > left:
                return "13", entry
        elif amount > account.limit:
            return "61", entry
        if kind in ("purchase", "preauth") and amount > account.balance:
            return "51", entry
        entry.original = original
        entry.approved = True
        self._effect(entry, +1)
        return "00", entry

    def _pin(self, req: Message, pik: bytes, pan: str, account: Account) -> str:
        if account.wrong_pins >= 3:
            return "75"
        clear = ecb_decrypt(pik, bytes.fromhex(req[52]))
        with_pan = (req.sub("53.1") or "2") == "2"
        pin = iso0_pin(clear, pan if with_pan else None)
        if pin != account.pin:
            account.wrong_pins += 1
            return "75" if account.wrong_pins >= 3 else "55"
        account.wrong_pins = 0
        return ""

    def _original(self, kind: str, req: Message, terminal: str) -> Entry | None:
        ref = req.get(61) or ""
        want = "preauth" if kind == "completion" else "purchase"
        for e in self.journal:
            if (e.terminal == terminal and e.kind == want and e.approved and not e.reversed
                    and not e.voided and e.batch + e.stan == ref[:12]):
                if kind == "completion" and req.get(38) != e.auth:
                    return None
                if kind != "completion" and req.get(37) != e.rrn:
                    return None
                return e
        return None

    def _effect(self, entry: Entry, sign: int) -> None:
        account = self.accounts[entry.pan]
        original = entry.original
        if entry.kind == "purchase" or entry.kind == "preauth":
            account.balance -= sign * entry.amount
        elif entry.kind == "void" and original is not None:
            account.balance += sign * original.amount
            original.voided = sign > 0
        elif entry.kind == "refund" and original is not None:
            account.balance += sign * entry.amount
            original.used += sign * entry.amount
        elif entry.kind == "completion" and original is not None:
            # the hold of the pre-authorisation is released and the completion charged
            account.balance += sign * (original.amount - entry.amount)
            original.used += sign * entry.amount

    def _reverse(self, req: Message, terminal: str, batch: str) -> str:
        amount = int(req.get(4) or "0")
        for e in self.journal:
            if e.terminal == terminal and e.batch == batch and e.stan == req[11] and e.amount == amount:
                if e.approved and (not e.reversed or self.reverse_again):
                    e.reversed = True
                    self._effect(e, -1)
                return "00"
        return self.unknown_reversal

    def _settled(self, terminal: str, batch: str) -> list[Entry]:
        return [e for e in self.journal if e.terminal == terminal and e.batch == batch and e.approved
                and not e.reversed and not e.voided and e.kind in (*_DEBITS, "refund")]

    def _settle(self, req: Message, terminal: str, batch: str) -> tuple[str, str]:
        entries = self._settled(terminal, batch)
        debits = [e.amount for e in entries if e.kind in _DEBITS]
        credits = [e.amount for e in entries if e.kind == "refund"]
        ours = f"{sum(debits):012d}{len(debits):03d}{sum(credits):012d}{len(credits):03d}"
        theirs = req[48]
        if theirs[:30] == ours and not self.settle_wrong:
            self.batches[terminal] = f"{int(batch) + 1:06d}"
            return "00", theirs[:30] + "1"
        return "95", theirs[:30] + "2"

    def _upload(self, req: Message, terminal: str, batch: str) -> str:
        amount = int(req.get(4) or "0")
        found = any(e.stan == req[11] and e.amount == amount for e in self._settled(terminal, batch))
        return "00" if found else "25"
