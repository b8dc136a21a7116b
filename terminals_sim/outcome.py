"""What one exchange of a virtual terminal came to: the vocabulary shared by the terminal, the
fleet runner, the report and the conformance suite."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from specs.response import describe


class Kind(StrEnum):
    """The exchanges a virtual terminal knows; the values are the scenario step names and the
    names of the kinds in the message catalogues (specs/dialects/*.messages.toml)."""

    SIGNIN = "signin"
    OPERATOR_SIGNIN = "operator_signin"
    OPERATOR_SIGNOUT = "operator_signout"
    PASSWORD_CHANGE = "password_change"
    ECHO = "echo"
    SIGNOFF = "signoff"
    PARAM_DOWNLOAD = "param_download"
    STATUS_UPLOAD = "status_upload"
    PURCHASE = "purchase"
    BALANCE = "balance"
    VOID = "void"
    REFUND = "refund"
    PREAUTH = "preauth"
    COMPLETION = "completion"
    AUTHORISATION = "authorisation"  # iso87 0100: judged on the card alone, nothing held
    REVERSAL = "reversal"
    SETTLEMENT = "settlement"
    BATCH_UPLOAD = "batch_upload"
    # chip cards (docs/chip.md)
    CHIP_PURCHASE = "chip_purchase"
    CONTACTLESS_PURCHASE = "contactless_purchase"
    CHIP_BALANCE = "chip_balance"
    CHIP_VOID = "chip_void"
    CHIP_REFUND = "chip_refund"
    CHIP_PREAUTH = "chip_preauth"
    CHIP_REVERSAL = "chip_reversal"
    SCRIPT_ADVICE = "script_advice"
    IC_UPLOAD = "ic_upload"
    IC_UPLOAD_END = "ic_upload_end"
    CAPK_LIST = "capk_list"
    CAPK_RECORD = "capk_record"
    CAPK_DONE = "capk_done"
    AID_LIST = "aid_list"
    AID_RECORD = "aid_record"
    AID_DONE = "aid_done"
    BLACKLIST = "blacklist"
    BLACKLIST_DONE = "blacklist_done"
    # Scenario steps made of several exchanges (no catalogue kind of their own).
    IC_DOWNLOAD = "ic_download"  # CA keys, then IC parameters
    CAPK_DOWNLOAD = "capk_download"
    AID_DOWNLOAD = "aid_download"
    BLACKLIST_DOWNLOAD = "blacklist_download"


class Failure(StrEnum):
    """Why an exchange failed; the keys of the report's ``failures`` object."""

    TIMEOUT = "timeout"
    REFUSED = "refused"  # connection refused (or could not be opened)
    RESET = "reset"  # connection reset or closed before the answer came
    BAD_CHECK_VALUE = "bad_check_value"  # a working key (or a downloaded CA key) did not match its check value
    BAD_MAC = "bad_mac"  # the answer's field 64 is wrong or missing
    UNEXPECTED_CODE = "unexpected_code"  # field 39 outside what the scenario expects
    PROTOCOL = "protocol"  # undecodable answer, wrong MTI, 11/41/42/60.3 not echoed, ...


class FollowUp(StrEnum):
    """What the host asked the terminal to do next (39 = A0, or the header's requirement)."""

    NONE = "none"
    SIGNIN = "signin"  # 39 = A0/99, or processing requirement 3
    PARAM_DOWNLOAD = "param_download"  # processing requirement 1
    STATUS_UPLOAD = "status_upload"  # processing requirement 2
    CAPK_DOWNLOAD = "capk_download"  # processing requirement 4
    AID_DOWNLOAD = "aid_download"  # processing requirement 5
    BLACKLIST_DOWNLOAD = "blacklist_download"  # processing requirement 7

    @property
    def kind(self) -> Kind | None:
        return None if self is FollowUp.NONE else Kind(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The result of one exchange.

    ``failure`` is None when the answer was well formed and trustworthy; ``ok`` additionally
    needs 39 = 00. ``detail`` is for people and never holds key, PIN or MAC material.
    ``mirrored`` marks an answer a bare echo host bounced back (bench mode only).
    ``balance_cents`` is field 54 of an approved balance inquiry.
    """

    kind: Kind
    response_code: str | None
    failure: Failure | None = None
    detail: str = ""
    follow_up: FollowUp = FollowUp.NONE
    mirrored: bool = False
    balance_cents: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and (self.response_code == "00" or self.mirrored)

    def as_unexpected(self, expected: frozenset[str]) -> Outcome:
        """This outcome judged against the codes a scenario step expects."""
        if self.failure is not None or self.mirrored or self.response_code in expected:
            return self
        return Outcome(
            kind=self.kind,
            response_code=self.response_code,
            failure=Failure.UNEXPECTED_CODE,
            detail=f"39 = {describe(self.response_code)}, expected {'/'.join(sorted(expected))}",
            follow_up=self.follow_up,
            balance_cents=self.balance_cents,
        )
