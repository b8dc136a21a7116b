"""Long-running fuzz target for the BER-TLV codec and its masking (not part of `make test`).

Runs under atheris when it is installed (`pip install atheris`;
`python tests/fuzz/fuzz_tlv.py -atheris_runs=1000000`), otherwise as a long hypothesis run
(`python tests/fuzz/fuzz_tlv.py --hypothesis 200000`). The properties: any bytes give data
objects or a TlvError, never anything else; what parsed re-encodes and parses the same; the
masked view has the input's length.
"""

from __future__ import annotations

import sys

from specs import tlv
from specs.masking import mask_tlv_hex


def one_input(data: bytes) -> None:
    text = data.hex().upper()
    assert len(mask_tlv_hex(text)) == len(text)
    try:
        found = tlv.parse(data, base_offset=3, field="55")
    except tlv.TlvError as exc:
        assert 3 <= exc.offset <= 3 + len(data)
        return
    again = tlv.build(found)
    assert len(again) <= len(data)
    assert tlv.parse(again) == found
    repr(found)


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
