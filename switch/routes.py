"""Which handler serves each request kind, and under which session rule.

What a request looks like (MTI, 3, 60.1, 60.3 or 70, MAC, what it needs) is in the message
catalogue (specs/dialects/*.messages.toml, read by specs/catalogue_loader.py); this table only says
who answers each kind and which row of the session table (switch/session.py) it follows.
Adding a request kind is one catalogue entry and one line here with its handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from specs.catalogue import MessageKind, Needs
from specs.catalogue_loader import catalogue_for
from specs.message import Message
from specs.response import ResponseCode
from switch import authorisation, chipadvice, fieldchecks, financial, icdownload, netmgmt, operators, signin
from switch.context import Exchange, Result, Services
from switch.financial import Op
from switch.records import SessionKeys, Terminal
from switch.session import Request

Handler = Callable[[Services, Exchange, MessageKind, Terminal, SessionKeys | None], Awaitable[Result]]
SUPERVISOR = "00"


@dataclass(frozen=True, slots=True)
class Route:
    request: Request  # the session table's row for this kind
    handle: Handler


def _plain(answer: Callable[[Services, Exchange], Result]) -> Handler:
    async def handle(services: Services, ex: Exchange, _k: MessageKind, _t: Terminal, _s: SessionKeys | None) -> Result:
        return answer(services, ex)

    return handle


def _awaited(answer: Callable[[Services, Exchange], Awaitable[Result]]) -> Handler:
    async def handle(services: Services, ex: Exchange, _k: MessageKind, _t: Terminal, _s: SessionKeys | None) -> Result:
        return await answer(services, ex)

    return handle


def _of_kind(answer: Callable[[Services, Exchange, MessageKind], Awaitable[Result]]) -> Handler:
    async def handle(
        services: Services, ex: Exchange, kind: MessageKind, _t: Terminal, _s: SessionKeys | None
    ) -> Result:
        return await answer(services, ex, kind)

    return handle


def _operator(answer: Callable[[Services, Exchange, SessionKeys], Awaitable[Result]]) -> Handler:
    async def handle(
        services: Services, ex: Exchange, _k: MessageKind, _t: Terminal, session: SessionKeys | None
    ) -> Result:
        assert session is not None  # the session table serves these only to a signed-in terminal
        return await answer(services, ex, session)

    return handle


def _financial(op: Op) -> Handler:
    async def handle(
        services: Services, ex: Exchange, kind: MessageKind, terminal: Terminal, session: SessionKeys | None
    ) -> Result:
        assert session is not None  # the session table serves these only to a signed-in terminal
        return await financial.handle(op, services, ex, terminal, session, kind)

    return handle


_R = Request
#: (catalogue, kind) -> route. The iso87 network management kinds never reach their handler:
#: the session table answers them 00 without a terminal (the iso87 dialects carry no session).
ROUTES: Mapping[tuple[str, str], Route] = MappingProxyType(
    {
        ("cup-pos", "signin"): Route(_R.TERMINAL_SIGNIN, signin.terminal_signin),
        ("cup-pos", "signoff"): Route(_R.TERMINAL_SIGNOFF, _plain(netmgmt.signoff)),
        ("cup-pos", "echo"): Route(_R.ECHO, _plain(netmgmt.echo)),
        ("cup-pos", "param_download"): Route(_R.PARAMETER_DOWNLOAD, _plain(netmgmt.parameters)),
        ("cup-pos", "status_upload"): Route(_R.STATUS_UPLOAD, _plain(netmgmt.status_upload)),
        ("cup-pos", "operator_signin"): Route(_R.OPERATOR_SIGNIN, _operator(operators.operator_signin)),
        ("cup-pos", "operator_signout"): Route(_R.OPERATOR_SIGNOUT, _operator(operators.operator_signout)),
        ("cup-pos", "password_change"): Route(_R.PASSWORD_CHANGE, _operator(operators.password_change)),
        **{("cup-pos", op.value): Route(_R.FINANCIAL, _financial(op)) for op in Op},
        # chip kinds (docs/chip.md): the same business, with field 55 and the ARQC
        ("cup-pos", "chip_purchase"): Route(_R.FINANCIAL, _financial(Op.PURCHASE)),
        ("cup-pos", "contactless_purchase"): Route(_R.FINANCIAL, _financial(Op.PURCHASE)),
        ("cup-pos", "chip_balance"): Route(_R.FINANCIAL, _financial(Op.BALANCE)),
        ("cup-pos", "chip_void"): Route(_R.FINANCIAL, _financial(Op.VOID)),
        ("cup-pos", "chip_refund"): Route(_R.FINANCIAL, _financial(Op.REFUND)),
        ("cup-pos", "chip_preauth"): Route(_R.FINANCIAL, _financial(Op.PREAUTH)),
        ("cup-pos", "chip_reversal"): Route(_R.FINANCIAL, _financial(Op.REVERSAL)),
        ("cup-pos", "script_advice"): Route(_R.FINANCIAL, _of_kind(chipadvice.script_advice)),
        ("cup-pos", "ic_upload"): Route(_R.FINANCIAL, _of_kind(chipadvice.ic_upload)),
        ("cup-pos", "ic_upload_end"): Route(_R.FINANCIAL, _of_kind(chipadvice.ic_upload_end)),
        **{
            ("cup-pos", name): Route(_R.PARAMETER_DOWNLOAD, _awaited(answer))
            for name, answer in icdownload.ANSWERS.items()
        },
        ("iso87", "signin"): Route(_R.NETWORK_MANAGEMENT, _plain(netmgmt.echo)),
        ("iso87", "signoff"): Route(_R.NETWORK_MANAGEMENT, _plain(netmgmt.echo)),
        ("iso87", "echo"): Route(_R.NETWORK_MANAGEMENT, _plain(netmgmt.echo)),
        ("iso87", "authorisation"): Route(_R.ECHO, authorisation.authorise),
    }
)


def classify(message: Message) -> tuple[MessageKind, Route] | None:
    """The kind a request is and who serves it, or None (answer the catalogue's unmatched code)."""
    catalogue = catalogue_for(message.dialect)
    kind = catalogue.lookup(message)
    if kind is None:
        return None
    route = ROUTES.get((catalogue.name, kind.name))
    return None if route is None else (kind, route)


async def run(
    kind: MessageKind, route: Route, services: Services, ex: Exchange, terminal: Terminal, session: SessionKeys | None
) -> Result:
    """The handler's answer, once what the catalogue says the kind needs beyond the session
    table (the supervisor) is there, with the field checks' warnings (switch/fieldchecks.py)."""
    if kind.needs is Needs.SUPERVISOR and (session is None or session.operator_id != SUPERVISOR):
        return Result(
            ResponseCode.NOT_PERMITTED_TO_TERMINAL, reason=f"a {kind.name} needs the supervisor (00) signed in"
        )
    findings = await fieldchecks.inspect(services, ex, kind, terminal, session)
    refusal = fieldchecks.apply(services, findings)  # strict checking refuses (30)
    if refusal is not None:
        return refusal
    return fieldchecks.with_warnings(await route.handle(services, ex, kind, terminal, session), findings)
