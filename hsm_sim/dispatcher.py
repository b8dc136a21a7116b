"""The host-command dispatcher: one request message in, one response message out.

Sans-I/O: the servers strip the length prefix and message header before calling ``handle`` and
put them back around the answer. This is the one point where failures become wire answers:

* an ``HsmError`` from a handler answers with its payShield error code, and a ``CryptoError``
  from the crypto core with the code ``hsm_sim.errors.crypto_error_code`` maps it to;
* anything else is our bug: it answers 15 (the host sees an input-data error, never a traceback)
  and is logged with its traceback. ``reraise_bugs=True`` re-raises instead, which is what the
  test suite uses so that a bug cannot hide behind a plausible error code.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from types import MappingProxyType

from hsm_sim.commands import clearkey, diag, emv, keygen, mac, pin
from hsm_sim.cryptoerrors import CryptoError
from hsm_sim.errors import ErrorCode, HsmError, crypto_error_code
from hsm_sim.hostcmd import Command, FieldCursor, HsmContext, build_response
from hsm_sim.lmk import Lmk
from specs.logs import get_logger

_log = get_logger("hsm_sim.dispatcher")

#: Every host command this HSM serves: the only list of commands in the code base.
COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        # key management
        "A0": keygen.A0,
        "A6": keygen.A6,
        "A8": keygen.A8,
        "BU": keygen.BU,
        "HA": keygen.HA,
        "HC": keygen.HC,
        # PIN
        "BA": pin.BA,
        "BC": pin.BC,
        "CA": pin.CA,
        "CC": pin.CC,
        "DC": pin.DC,
        "EC": pin.EC,
        "G0": pin.G0,
        "JC": pin.JC,
        "JE": pin.JE,
        "JG": pin.JG,
        "NG": pin.NG,  # test mode only
        # MAC
        "M6": mac.M6,
        "M8": mac.M8,
        # EMV: ARQC verification and ARPC generation
        "KQ": emv.KQ,
        # switchsim extension: clear test keys in (terminal registration)
        "ZK": clearkey.ZK,
        # diagnostics
        "NC": diag.NC,
    }
)

#: Answer to a well-formed command code that is not in ``COMMANDS``. A real payShield answers
#: an unlicensed command with 67; we treat "not implemented here" the same way.
UNKNOWN_COMMAND = ErrorCode.NOT_LICENSED
#: Answer to a test-mode-only command (NG) on an HSM not started in test mode.
DISABLED_COMMAND = ErrorCode.DISABLED
#: Response code used when the request is too short to carry a command code to echo.
NO_COMMAND_CODE = "ZZ"


class Dispatcher:
    """Routes host commands to their handlers; safe to share between connections."""

    def __init__(
        self,
        lmk: Lmk | None = None,
        *,
        test_mode: bool = False,
        firmware: str = "0007-E000",
        reraise_bugs: bool = False,
    ) -> None:
        self._ctx = HsmContext(lmk=lmk or Lmk.default(), test_mode=test_mode, firmware=firmware)
        self._reraise_bugs = reraise_bugs
        # ``COMMANDS`` by the two bytes of a request as they arrive, in any letter case: one
        # dictionary probe instead of checking, decoding and upper-casing every request's code.
        self._by_wire_code = _wire_index(COMMANDS)

    @property
    def context(self) -> HsmContext:
        return self._ctx

    def handle(self, message: bytes) -> bytes:
        """Execute one host command (``code + fields``) and return ``response code + error +
        fields``. Never raises unless ``reraise_bugs`` is set."""
        raw_code = message[:2]
        known = self._by_wire_code.get(raw_code)
        if known is not None:
            code, command = known
        else:
            if len(raw_code) < 2 or not raw_code.isalnum() or not raw_code.isascii():
                _log.info("hsm_command_rejected", reason="no valid command code")
                return (NO_COMMAND_CODE + ErrorCode.INPUT_DATA).encode("ascii")
            code = raw_code.decode("ascii").upper()
            command = None  # every code of COMMANDS is in the index, in every letter case
        if command is None:
            _log.info("hsm_command_rejected", command=code, error=str(UNKNOWN_COMMAND))
            return build_response(code, UNKNOWN_COMMAND)
        if command.spec.test_mode_only and not self._ctx.test_mode:
            _log.info("hsm_command_rejected", command=code, error=str(DISABLED_COMMAND))
            return build_response(code, DISABLED_COMMAND)
        cursor = FieldCursor(message[2:])
        try:
            reply = command.handler(self._ctx, cursor)
        except HsmError as exc:
            # HsmError reasons are written to be loggable: they name fields, never values.
            _log.info("hsm_command_failed", command=code, error=str(exc.code), reason=exc.reason)
            return build_response(code, exc.code)
        except CryptoError as exc:
            # Reasons of the core are loggable too: sizes and formats, never values.
            error = crypto_error_code(exc)
            _log.info("hsm_command_failed", command=code, error=str(error), reason=exc.reason)
            return build_response(code, error)
        except Exception as exc:
            # Frames and type only: an exception message or a locals dump could carry key or
            # PIN material, the stack alone is enough to find the bug.
            _log.error(
                "hsm_command_bug",
                command=code,
                error_type=type(exc).__name__,
                stack="".join(traceback.format_tb(exc.__traceback__)),
            )
            if self._reraise_bugs:
                raise
            return build_response(code, ErrorCode.INPUT_DATA)
        return build_response(code, reply.code, *reply.fields) + cursor.trailer


def _wire_index(commands: Mapping[str, Command]) -> dict[bytes, tuple[str, Command]]:
    index: dict[bytes, tuple[str, Command]] = {}
    for code, command in commands.items():
        for first in {code[0], code[0].lower()}:
            for second in {code[1], code[1].lower()}:
                index[(first + second).encode("ascii")] = (code, command)
    return index
