"""The virtual terminal against the switch engine in memory (tests/pair.py), no sockets: every
kind of each message catalogue, built by one side and answered by the other.

Balances are worked out by hand from docs/financial.md: the good card holds 1,000,000.00 CNY
(100_000_000 fen); a void gives back its purchase, a refund its amount, a pre-authorisation
holds its amount and its completion for the same amount charges it, a reversal undoes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specs import catalogue_loader
from specs.testcards import CHIP_CARD, GOOD_CARD
from switch.cards import pan_ref
from switch.records import TerminalId
from terminals_sim.financial import CardProfile
from terminals_sim.outcome import Kind
from terminals_sim.terminal import VirtualTerminal
from terminals_sim.transitions import State
from terminals_sim.workingkeys import KeyMode
from tests.pair import MERCHANT, SUPERVISOR, TERMINAL, Pair, open_pair

TID = TerminalId(MERCHANT, TERMINAL)


def catalogue_kinds(name: str) -> set[Kind]:
    return {Kind(kind) for kind in catalogue_loader.load(name).kinds}


async def ok(pair: Pair, kind: Kind) -> None:
    outcome = await pair.step(kind)
    assert outcome.ok, (kind, outcome)


async def ok_amount(pair: Pair, kind: Kind, amount: int) -> None:
    outcome = await pair.transaction(kind, amount)
    assert outcome.ok, (kind, outcome)


def state(t: VirtualTerminal) -> State:
    # A function, so mypy does not carry a narrowed property value across calls that change it.
    return t.state


async def operator_of(pair: Pair) -> str | None:
    session = await pair.services.session(TID)
    assert session is not None
    return session.operator_id


@pytest.mark.parametrize("mode", list(KeyMode))
async def test_a_pos_day_drives_every_kind_of_the_cup_pos_catalogue(tmp_path: Path, mode: KeyMode) -> None:
    script: dict[str, object] = {"name": "a script for 7.77", "match": {"mti": "0200", "amount_eq": 777},
              "action": {"issuer_script": "72", "script_commands": ["8424000000"]}}
    async with open_pair(tmp_path / "switch.db", key_mode=mode, parameters={"11": "PAIR MERCHANT"},
                         rules=(script,)) as pair:
        t = pair.terminal
        await ok(pair, Kind.ECHO)  # before any sign-in: the echo needs nothing
        await ok(pair, Kind.SIGNIN)  # the terminal checked every check value of field 62
        assert state(t) is State.SIGNED_IN and t.working_keys is not None
        assert (len(t.working_keys.pik), t.working_keys.tdk is not None) == (
            8 if mode is KeyMode.SINGLE else 16,
            mode is KeyMode.DOUBLE_TDK,
        )
        await ok(pair, Kind.PARAM_DOWNLOAD)
        assert t.parameters == b"11PAIR MERCHANT"
        await ok(pair, Kind.STATUS_UPLOAD)
        await ok(pair, Kind.OPERATOR_SIGNIN)
        assert state(t) is State.OPERATOR_IN and await operator_of(pair) == SUPERVISOR
        await ok(pair, Kind.PASSWORD_CHANGE)  # to the same password: the next sign-in still works

        await ok_amount(pair, Kind.PURCHASE, 1_000)
        await ok(pair, Kind.VOID)  # of that purchase: the supervisor is signed in
        await ok_amount(pair, Kind.PURCHASE, 2_000)
        await ok(pair, Kind.REFUND)  # all of it
        await ok_amount(pair, Kind.PREAUTH, 3_000)
        await ok(pair, Kind.COMPLETION)  # for the whole pre-authorised amount
        await pair.lose(t.start_transaction(Kind.PURCHASE, 500))
        assert t.reversal_due is not None
        await ok(pair, Kind.REVERSAL)
        assert t.reversal_due is None
        balance = await pair.step(Kind.BALANCE)
        assert balance.ok and balance.balance_cents == GOOD_CARD.balance_cents - 3_000

        await ok(pair, Kind.SETTLEMENT)  # the totals agree: batch 000001 closes on both sides
        switch_side = await pair.services.store.get_terminal(TID)
        assert t.batch == "000002" and switch_side is not None and switch_side.batch == "000002"

        # Batch 000002: the switch also holds a purchase of another device under this terminal
        # id, so this terminal's settlement answers 95 and its batch is uploaded.
        await ok_amount(pair, Kind.PURCHASE, 700)
        other = pair.terminal_like(first_stan=500)
        assert (await pair.step(Kind.SIGNIN, other)).ok  # new keys: ours no longer count
        assert (await pair.send(other.start_transaction(Kind.PURCHASE, 900), other)).ok
        await ok(pair, Kind.SIGNIN)
        settlement = await pair.step(Kind.SETTLEMENT)
        assert (settlement.response_code, settlement.failure) == ("95", None) and t.uploading
        await ok(pair, Kind.BATCH_UPLOAD)
        assert not t.uploading and t.batch == "000003"

        # Batch 000003, the chip (docs/chip.md): the IC downloads, chip and contactless sales whose
        # ARPC the card checks, a script and its advice, a chip reversal, the chip upload.
        for which in (Kind.CAPK_DOWNLOAD, Kind.AID_DOWNLOAD, Kind.BLACKLIST_DOWNLOAD):
            t.begin_download(which)
            while (kind := t.next_download) is not None:
                await ok(pair, kind)
        assert len(t.ic.capks) == 4 and len(t.ic.aids) == 3 and t.ic.blacklist == ()
        await ok(pair, Kind.OPERATOR_SIGNIN)  # the supervisor, for the chip void and refund
        chip = CardProfile.of(CHIP_CARD)
        for kind, amount in ((Kind.CHIP_PURCHASE, 1_500), (Kind.CONTACTLESS_PURCHASE, 990), (Kind.CHIP_PREAUTH, 800),
                             (Kind.CHIP_BALANCE, None)):
            assert (await pair.transaction(kind, amount, card=chip)).ok, kind
        await ok(pair, Kind.CHIP_VOID)  # of the contactless purchase, the latest chip one
        await ok_amount(pair, Kind.CHIP_REFUND, 500)  # part of the 15.00
        await pair.lose(t.start_transaction(Kind.CHIP_PURCHASE, 600, chip))
        await ok(pair, Kind.REVERSAL)  # a chip reversal: 55 = 95 9F1E 9F10 9F36
        assert (await pair.transaction(Kind.CHIP_PURCHASE, 777, card=chip)).ok
        assert t.advice_due is not None
        await ok(pair, Kind.SCRIPT_ADVICE)
        await ok(pair, Kind.SETTLEMENT)
        while t.uploading:  # the TC records (15.00, its 5.00 refund, 7.77), then the end
            await ok(pair, Kind.BATCH_UPLOAD)
        assert t.batch == "000004"

        await ok(pair, Kind.OPERATOR_SIGNIN)
        await ok(pair, Kind.OPERATOR_SIGNOUT)
        assert state(t) is State.SIGNED_IN and await operator_of(pair) is None
        await ok(pair, Kind.SIGNOFF)
        assert state(t) is State.SIGNED_OUT and await pair.services.session(TID) is None
        assert pair.kinds() == catalogue_kinds("cup-pos")


async def test_an_iso87_binary_day_drives_every_kind_of_the_iso87_catalogue(tmp_path: Path) -> None:
    async with open_pair(tmp_path / "switch.db", dialect="iso87-binary") as pair:
        t = pair.terminal
        await ok(pair, Kind.SIGNIN)
        await ok(pair, Kind.ECHO)
        approved = await pair.transaction(Kind.AUTHORISATION, 8_800)
        assert approved.ok and t.last_transaction is not None and len(t.last_transaction.auth_code) == 6
        refused = await pair.transaction(Kind.AUTHORISATION, GOOD_CARD.limit_cents + 1)
        assert (refused.response_code, refused.failure) == ("61", None)  # over the card's limit
        card = await pair.services.store.get_card(pan_ref(GOOD_CARD.pan))
        assert card is not None and card.balance == GOOD_CARD.balance_cents  # nothing held
        await ok(pair, Kind.SIGNOFF)
        assert state(t) is State.SIGNED_OUT and len(t.ledger) == 0
        assert pair.kinds() == catalogue_kinds("iso87")
