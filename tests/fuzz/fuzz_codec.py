"""Long-running fuzz target for the framer and the codec (not part of `make test`).

Runs under atheris when it is installed (`pip install atheris`;
`python tests/fuzz/fuzz_codec.py -atheris_runs=1000000`), otherwise as a long hypothesis run
(`python tests/fuzz/fuzz_codec.py --hypothesis 200000`). The property: any bytes give frames,
messages or the documented typed errors, never anything else.
"""

from __future__ import annotations

import contextlib
import sys

from specs import loader
from specs.codec import codec_for
from specs.errors import WireError
from specs.framing import FrameDecoder, FrameFormat

CODECS = [codec_for(name) for name in loader.available()]


def one_input(data: bytes) -> None:
    if not data:
        return
    codec = CODECS[data[0] % len(CODECS)]
    blob = data[1:]
    with contextlib.suppress(WireError):
        codec.decode(blob)
    decoder = FrameDecoder(FrameFormat(tpdu=True, cup_header=True, max_frame=256))
    try:
        decoder.feed(blob)
        for frame in decoder.events():
            body = getattr(frame, "body", b"")
            with contextlib.suppress(WireError):
                codec.decode(body)
    except WireError:
        pass
    assert decoder.buffered <= 2 + 256


def main() -> None:
    if "--hypothesis" in sys.argv:
        from hypothesis import given, settings
        from hypothesis import strategies as st

        runs = int(sys.argv[sys.argv.index("--hypothesis") + 1])

        @settings(max_examples=runs, deadline=None)
        @given(st.binary(max_size=512))
        def run(data: bytes) -> None:
            one_input(data)

        run()
        print(f"{runs} examples, no unexpected exception")
        return
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
