"""The observation seam: several observers behind one, and the bounded log of refusals."""

from __future__ import annotations

from specs.observer import NULL_OBSERVER, NullObserver, Observers, RefusalLog, combine


class Recorder(NullObserver):
    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name, self.log = name, log

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        self.log.append((self.name, f"{kind}/{code}/{failure}/{reason}"))

    def connection_closed(self, reason: str) -> None:
        self.log.append((self.name, f"closed/{reason}"))


def test_observers_hear_every_event_in_order() -> None:
    log: list[tuple[str, str]] = []
    both = Observers([Recorder("a", log), Recorder("b", log)])
    both.exchange_done("echo", "00", 0.1)
    both.connection_closed("idle")
    both.store_commit(0.1)  # neither listens: nothing
    assert log == [("a", "echo/00//"), ("b", "echo/00//"), ("a", "closed/idle"), ("b", "closed/idle")]


def test_combine_skips_nobody_listening() -> None:
    one = Recorder("a", [])
    assert combine() is NULL_OBSERVER
    assert combine(None, NULL_OBSERVER) is NULL_OBSERVER
    assert combine(None, one) is one
    assert isinstance(combine(one, Recorder("b", [])), Observers)


def test_refusal_log_keeps_the_latest_only() -> None:
    log = RefusalLog(size=3)
    for i in range(5):
        log.add("purchase", "51", f"n{i}")
    assert [r.reason for r in log.latest()] == ["n2", "n3", "n4"]
    assert log.latest()[0].as_json().keys() == {"time", "kind", "code", "reason"}
