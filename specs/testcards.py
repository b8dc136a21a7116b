"""The test cards both sides of a financial run agree on.

The fleet's virtual terminals present these cards and the switch registers the same ones (its
``[[cards]]`` config and ``switchsim card add``), so a default run needs no hand set-up. They
live in ``specs/`` because both sides read them and neither may import the other.

Amounts are in cents of CNY (currency 156). Expiry is YYMM, as in track 2 and field 14.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CardStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class TestCard:
    pan: str
    expiry: str  # YYMM
    service_code: str
    pin: str
    balance_cents: int
    limit_cents: int  # per transaction
    status: CardStatus = CardStatus.ACTIVE
    # A chip card: both sides derive its IMK-AC from the fleet's seed
    # (hsm_sim.testkeys.derive_imk_ac); psn is its PAN sequence number.
    chip: bool = False
    psn: str = ""

    # pytest collects classes named Test*; this one is data, not a test.
    __test__ = False

    def __post_init__(self) -> None:
        if not (self.pan.isdigit() and 12 <= len(self.pan) <= 19):
            raise ValueError("test card PAN must be 12 to 19 digits")
        if not (self.expiry.isdigit() and len(self.expiry) == 4 and 1 <= int(self.expiry[2:]) <= 12):
            raise ValueError(f"test card {self.masked_pan}: expiry must be YYMM")
        if not (self.service_code.isdigit() and len(self.service_code) == 3):
            raise ValueError(f"test card {self.masked_pan}: service code must be 3 digits")
        if not (self.pin.isdigit() and 4 <= len(self.pin) <= 12):
            raise ValueError(f"test card {self.masked_pan}: PIN must be 4 to 12 digits")
        if self.balance_cents < 0 or self.limit_cents < 0:
            raise ValueError(f"test card {self.masked_pan}: balance and limit must be >= 0")
        if self.chip and not (len(self.psn) == 2 and self.psn.isdigit()):
            raise ValueError(f"test card {self.masked_pan}: a chip card's PSN is 2 digits")

    @property
    def masked_pan(self) -> str:
        return f"{self.pan[:6]}...{self.pan[-4:]}"

    def __repr__(self) -> str:
        # The PAN and PIN stay out of reprs (and so out of logs and assertion messages).
        return f"TestCard({self.masked_pan}, expiry={self.expiry}, status={self.status.value})"


_SERVICE_CODE = "101"  # magnetic stripe, international, normal authorisation, PIN allowed

# A card in good standing: the one the conformance suite uses unless told otherwise.
GOOD_CARD = TestCard(
    pan="6222021234567890123",
    expiry="3012",
    service_code=_SERVICE_CODE,
    pin="123456",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
)
# 10.00 CNY: a purchase above it answers 51.
LOW_BALANCE_CARD = TestCard(
    pan="6222021234567890144",
    expiry="3012",
    service_code=_SERVICE_CODE,
    pin="123456",
    balance_cents=1_000,
    limit_cents=5_000_000,
)
# Expired January 2020: answers 54.
EXPIRED_CARD = TestCard(
    pan="6222021234567890151",
    expiry="2001",
    service_code=_SERVICE_CODE,
    pin="123456",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
)
# Blocked: answers 14.
BLOCKED_CARD = TestCard(
    pan="6222021234567890169",
    expiry="3012",
    service_code=_SERVICE_CODE,
    pin="123456",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
    status=CardStatus.BLOCKED,
)
# A second good card with a four-digit PIN.
SHORT_PIN_CARD = TestCard(
    pan="6222021234567890177",
    expiry="3012",
    service_code=_SERVICE_CODE,
    pin="1234",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
)
# A 16-digit PAN, so PIN blocks and track 2 are exercised at a second PAN length.
SIXTEEN_DIGIT_CARD = TestCard(
    pan="6212340000000001",
    expiry="3012",
    service_code=_SERVICE_CODE,
    pin="111111",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
)

# Chip cards (docs/chip.md): PBOC CVN 01, contact and contactless. Service code 220: an IC card
# (a 2xx card swiped without the fallback indicator is answered 45).
CHIP_CARD = TestCard(
    pan="6222021234567890206",
    expiry="3012",
    service_code="220",
    pin="123456",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
    chip=True,
    psn="01",
)
# A second chip card: 16 digits, no PAN sequence number on the card (PSN 00), service code 620.
CHIP_CARD_16 = TestCard(
    pan="6212340000000027",
    expiry="3012",
    service_code="620",
    pin="654321",
    balance_cents=100_000_000,
    limit_cents=5_000_000,
    chip=True,
    psn="00",
)

DEFAULT_TEST_CARDS: tuple[TestCard, ...] = (
    GOOD_CARD,
    LOW_BALANCE_CARD,
    EXPIRED_CARD,
    BLOCKED_CARD,
    SHORT_PIN_CARD,
    SIXTEEN_DIGIT_CARD,
    CHIP_CARD,
    CHIP_CARD_16,
)


def card_by_pan(pan: str, cards: tuple[TestCard, ...] = DEFAULT_TEST_CARDS) -> TestCard | None:
    for card in cards:
        if card.pan == pan:
            return card
    return None
