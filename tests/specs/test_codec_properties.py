"""Property tests for every dialect: round trips, and garbage gives only the typed error."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs import loader
from specs.codec import codec_for
from specs.errors import CodecError
from tests.specs.strategies import messages

DIALECTS = loader.available()
relaxed = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(data=st.data())
def test_encode_then_decode_is_identity(name: str, data: st.DataObject) -> None:
    codec = codec_for(name)
    message = data.draw(messages(codec))
    body = codec.encode(message, validate=False)
    again = codec.decode(body, validate=False)
    assert again.mti == message.mti
    assert dict(again.fields) == dict(message.fields)
    assert codec.encode(again, validate=False) == body


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(data=st.data(), extra=st.binary(min_size=1, max_size=8))
def test_decode_never_reads_past_the_message(name: str, data: st.DataObject, extra: bytes) -> None:
    codec = codec_for(name)
    body = codec.encode(data.draw(messages(codec)), validate=False)
    with pytest.raises(CodecError):
        codec.decode(body + extra, validate=False)


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(blob=st.binary(max_size=200))
def test_decode_of_garbage_returns_message_or_codec_error(name: str, blob: bytes) -> None:
    codec = codec_for(name)
    try:
        codec.decode(blob)
    except CodecError as exc:
        assert exc.response_code == "30"
        assert 0 <= exc.offset <= len(blob)


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(
    data=st.data(),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_decode_of_corrupted_message_returns_message_or_codec_error(
    name: str, data: st.DataObject, flips: list[tuple[int, int]]
) -> None:
    codec = codec_for(name)
    body = bytearray(codec.encode(data.draw(messages(codec)), validate=False))
    for pos, xor in flips:
        body[pos % len(body)] ^= xor
    with contextlib.suppress(CodecError):
        codec.decode(bytes(body), validate=False)
