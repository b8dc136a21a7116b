"""A blocking shell between a virtual terminal and a host, for drivers that are not asyncio
(Locust's users run on gevent, whose sockets block only their own greenlet).

``BlockingConnection`` is the counterpart of connection.py's ``HostConnection``: one TCP
connection, one exchange at a time, the same framer, failures mapped onto the same ``Failure``
kinds at this one boundary. ``drive`` runs a ``TerminalDriver`` coroutine without an event loop:
the driver's ``transmit`` and ``pause`` await a ``Blocking`` step, which ``drive`` performs with
blocking calls and hands back.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, NoReturn, TypeVar

from specs.errors import FramingError
from specs.framing import Frame, FrameDecoder, FrameFormat, KeepAlive
from specs.tls import tls_reason
from terminals_sim.connection import ExchangeFailed
from terminals_sim.outcome import Failure

T = TypeVar("T")
_READ = 65536


class BlockingConnection:
    """A client connection speaking length-prefixed frames over a blocking socket."""

    def __init__(
        self, host: str, port: int, fmt: FrameFormat, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        """Connect (over TLS with ``tls``, the handshake within the same ``timeout``), mapping
        every failure onto ExchangeFailed as connection.py's open_connection does."""
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
            if tls is not None:
                try:
                    self._sock = tls.wrap_socket(self._sock, server_hostname=host)
                except BaseException:
                    self._sock.close()
                    raise
        except TimeoutError:
            raise ExchangeFailed(Failure.TIMEOUT, f"connect took longer than {timeout:g} s") from None
        except ssl.SSLError as exc:
            raise ExchangeFailed(Failure.REFUSED, f"TLS handshake failed: {tls_reason(exc)}") from None
        except ConnectionRefusedError:
            raise ExchangeFailed(Failure.REFUSED, "connection refused") from None
        except OSError as exc:
            raise ExchangeFailed(Failure.REFUSED, f"cannot connect ({type(exc).__name__}: {exc.strerror})") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._decoder = FrameDecoder(fmt)
        self._lost: ExchangeFailed | None = None

    @property
    def usable(self) -> bool:
        return self._lost is None

    def exchange(self, frame: bytes, timeout: float) -> Frame:
        """Send one request frame and wait for the next frame back."""
        if self._lost is not None:
            raise self._lost
        sock = self._sock
        decoder = self._decoder
        deadline = time.monotonic() + timeout
        try:
            if decoder.buffered:
                self._fail(Failure.PROTOCOL, "frame arrived with no request outstanding")
            sock.settimeout(timeout)
            sock.sendall(frame)
            while True:
                event = decoder.next_event()
                if isinstance(event, KeepAlive):
                    continue
                if event is not None:
                    if decoder.buffered:
                        self._fail(Failure.PROTOCOL, "frame arrived with no request outstanding")
                    return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                data = sock.recv(_READ)
                if not data:
                    self._fail(Failure.RESET, "connection closed by the host")
                decoder.feed(data)
        except TimeoutError:
            # A late answer would be taken for the next request's: the connection is done.
            self._fail(Failure.TIMEOUT, f"no answer within {timeout:g} s")
        except FramingError as exc:
            self._fail(Failure.PROTOCOL, f"framing error: {exc.describe()}")
        except OSError as exc:
            self._fail(Failure.RESET, f"connection reset ({type(exc).__name__})")

    def _fail(self, failure: Failure, detail: str) -> NoReturn:
        if self._lost is None:
            self._lost = ExchangeFailed(failure, detail)
        self.close()
        raise self._lost

    def close(self) -> None:
        self._sock.close()


class Blocking(Generic[T]):
    """An awaitable step that ``drive`` performs with a blocking call."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call

    def __await__(self) -> Generator[Blocking[T], T, T]:
        result = yield self
        return result


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose only awaits are ``Blocking`` steps, performing each in turn; an
    exception a step raises is raised inside the coroutine, where it awaited."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = coro.send(send) if error is None else coro.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if not isinstance(step, Blocking):
            coro.close()
            raise TypeError(f"drive() can only perform Blocking steps, got {type(step).__name__}")
        send, error = None, None
        try:
            send = step.call()
        except Exception as exc:
            error = exc
        except BaseException:
            coro.close()  # interrupted from outside (gevent's GreenletExit, ^C): unwind the driver
            raise
