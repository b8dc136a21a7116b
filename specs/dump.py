"""Human and JSON views of a wire frame: the annotated dump and its exact JSON inverse.

Masked unless the caller passes ``unmasked=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from specs import tlv
from specs.codec import Codec
from specs.dialect import Sensitivity
from specs.errors import CodecError, WireError
from specs.framing import CupHeader, Frame, Tpdu, decode_frame, encode_frame
from specs.masking import mask_bytes, mask_tag_value, mask_tlv_hex, mask_value
from specs.message import Message, join_subfields


@dataclass(frozen=True, slots=True)
class DumpLine:
    offset: int
    part: str  # "len", "tpdu", "header", "mti", "bitmap", "11", "60.3" ...
    name: str
    raw: str  # hex of the bytes, masked when the field is sensitive
    value: str


@dataclass(frozen=True, slots=True)
class Decoded:
    frame: Frame
    message: Message


def decode_wire(codec: Codec, wire: bytes, *, body_only: bool = False) -> Decoded:
    """Decode a whole frame as it is on the wire (or a body from the MTI on)."""
    frame = Frame(body=wire) if body_only else decode_frame(codec.dialect.framing, wire)
    message = codec.decode(frame.body, base_offset=frame.offset)
    return Decoded(frame, message)


def annotate(codec: Codec, decoded: Decoded, *, unmasked: bool = False, end: int | None = None) -> list[DumpLine]:
    """The dump lines of a decoded frame; ``end``: where in the body the last part ends, for a
    message that decoded only in part (`Codec.decode_partial`)."""
    frame, message = decoded.frame, decoded.message
    body = frame.body
    base = frame.offset
    lines: list[DumpLine] = []
    fmt = codec.dialect.framing
    pos = 0
    if frame.offset:
        hsize = frame.offset - fmt.prefix_size
        if hsize:
            lines.append(DumpLine(0, "len", "Length header", "", str(fmt.prefix_size + len(body))))
        pos = hsize
        if frame.tpdu is not None:
            raw = frame.tpdu.to_bytes().hex().upper()
            lines.append(DumpLine(pos, "tpdu", "TPDU (id, destination, source)", raw, raw))
            pos += 5
        if frame.header is not None:
            h = frame.header
            raw = h.to_bytes().hex().upper()
            value = (
                f"app {h.app_type:02X} version {h.version:02X} status {h.terminal_status} "
                f"processing requirement {h.processing_requirement}"
            )
            lines.append(DumpLine(pos, "header", "UnionPay header", raw, value))
    parts = sorted(message.offsets.items(), key=lambda kv: kv[1])
    ends = [off for _, off in parts[1:]] + [len(body) if end is None else end]
    for (part, start), end in zip(parts, ends, strict=True):
        chunk = body[start:end]
        if part in ("mti", "bitmap", "1"):
            name = {"mti": "Message type", "bitmap": "Bitmap", "1": "Secondary bitmap"}[part]
            value = message.mti if part == "mti" else _present(message, part)
            lines.append(DumpLine(base + start, part, name, chunk.hex().upper(), value))
            continue
        number = int(part)
        spec = codec.dialect.fields[number]
        sens = Sensitivity.NONE if unmasked else spec.sensitivity
        value = message.fields[number]
        if spec.sensitivity is Sensitivity.TLV:
            lines += _tlv_lines(part, spec.name, chunk, len(value) // 2, base + start, unmasked=unmasked)
            continue
        lines.append(DumpLine(base + start, part, spec.name, mask_bytes(sens, chunk), mask_value(sens, value)))
        for sub_id, sub_value in message.subfields(number).items():
            sub_name = next(s.name for s in spec.subfields if s.id == sub_id)
            lines.append(DumpLine(base + start, sub_id, sub_name, "", mask_value(sens, sub_value)))
    return lines


def _tlv_lines(part: str, name: str, chunk: bytes, size: int, offset: int, *, unmasked: bool) -> list[DumpLine]:
    """A BER-TLV field (``chunk``: length prefix and ``size`` bytes of value): one line for the
    field, then one per data object with its tag's name; a value that does not parse gets a
    line saying where and why instead."""
    prefix = len(chunk) - size
    raw_value = chunk[prefix:]
    shown = raw_value.hex().upper() if unmasked else mask_tlv_hex(raw_value.hex().upper())
    try:
        objects = tlv.parse(raw_value, base_offset=offset + prefix, field=part)
    except tlv.TlvError as exc:
        return [
            DumpLine(offset, part, name, chunk[:prefix].hex().upper() + shown, f"{len(raw_value)} bytes"),
            DumpLine(exc.offset, part, "BER-TLV error", "", exc.describe()),
        ]
    lines = [DumpLine(offset, part, name, chunk[:prefix].hex().upper() + shown, f"{len(objects)} data objects")]
    lines += _object_lines(part, objects, unmasked=unmasked, depth=0)
    return lines


def _object_lines(part: str, objects: tuple[tlv.Tlv, ...], *, unmasked: bool, depth: int) -> list[DumpLine]:
    lines: list[DumpLine] = []
    indent = "  " * depth
    for obj in objects:
        label = f"{part}.{obj.tag}"
        if obj.children:
            lines.append(DumpLine(obj.offset, label, indent + obj.name, "", f"{len(obj.children)} data objects"))
            lines += _object_lines(part, obj.children, unmasked=unmasked, depth=depth + 1)
            continue
        secret = not unmasked and tlv.sensitivity(obj.tag) is not Sensitivity.NONE
        raw = mask_tag_value(obj) if secret else obj.value.hex().upper()
        lines.append(DumpLine(obj.offset, label, indent + obj.name, raw, raw if secret else tlv.readable(obj)))
    return lines


def tlv_json(value: str, *, unmasked: bool = False) -> list[dict[str, Any]] | dict[str, str]:
    """A BER-TLV field value (hex) as JSON: a list of {tag, name, value[, objects]}, or
    {"error": ...} when it does not parse. Values of sensitive tags are masked unless asked."""
    try:
        objects = tlv.parse(bytes.fromhex(value))
    except (ValueError, tlv.TlvError) as exc:
        return {"error": exc.describe() if isinstance(exc, tlv.TlvError) else "not hexadecimal"}
    return _objects_json(objects, unmasked)


def _objects_json(objects: tuple[tlv.Tlv, ...], unmasked: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for obj in objects:
        item: dict[str, Any] = {"tag": obj.tag, "name": obj.name}
        if obj.children:
            item["objects"] = _objects_json(obj.children, unmasked)
        else:
            item["value"] = obj.value.hex().upper() if unmasked else mask_tag_value(obj)
        out.append(item)
    return out


def _present(message: Message, part: str) -> str:
    numbers = [n for n in message.fields if (n > 64) == (part == "1")]
    return "fields " + ",".join(str(n) for n in numbers)


def partial_dump(codec: Codec, wire: bytes, *, body_only: bool = False, unmasked: bool = False) -> list[DumpLine]:
    """The dump of every part of a frame before the one that does not decode (empty when the
    framing itself fails); `switchsim decode` prints it before the error."""
    try:
        frame = Frame(body=wire) if body_only else decode_frame(codec.dialect.framing, wire)
        partial = codec.decode_partial(frame.body, base_offset=frame.offset)
        return annotate(codec, Decoded(frame, partial.message), unmasked=unmasked, end=partial.end)
    except WireError:
        return []


def render_dump(lines: list[DumpLine]) -> str:
    out = [f"{'offset':>6}  {'field':<7} {'name':<44} {'raw':<34} value"]
    for line in lines:
        raw = line.raw if len(line.raw) <= 32 else line.raw[:29] + "..."
        out.append(f"{line.offset:>6}  {line.part:<7} {line.name[:44]:<44} {raw:<34} {line.value}")
    return "\n".join(out)


def to_json(decoded: Decoded, *, unmasked: bool = False) -> dict[str, Any]:
    frame, message = decoded.frame, decoded.message
    dialect = message.dialect
    obj: dict[str, Any] = {"mti": message.mti}
    if frame.tpdu is not None:
        obj["tpdu"] = frame.tpdu.to_bytes().hex().upper()
    if frame.header is not None:
        obj["header"] = frame.header.to_bytes().hex().upper()
    values = message.unmasked_fields() if unmasked else message.masked_fields()
    obj["fields"] = {str(n): v for n, v in values.items()}
    subfields: dict[str, str] = {}
    for number in message.fields:
        spec = dialect.fields[number]
        for sub_id, sub_value in message.subfields(number).items():
            shown = sub_value if unmasked else mask_value(spec.sensitivity, sub_value)
            subfields[sub_id] = shown
    if subfields:
        obj["subfields"] = subfields
    # What from_json ignores: the data objects of BER-TLV fields, for reading only.
    objects = {
        str(n): tlv_json(v, unmasked=unmasked)
        for n, v in message.fields.items()
        if n in dialect.fields and dialect.fields[n].sensitivity is Sensitivity.TLV
    }
    if objects:
        obj["tlv"] = objects
    return obj


def from_json(codec: Codec, obj: Mapping[str, Any]) -> bytes:
    """The wire frame for a JSON object of the shape `to_json` prints (the exact inverse)."""
    dialect = codec.dialect
    if not isinstance(obj, Mapping) or not isinstance(obj.get("mti"), str):
        raise CodecError("mti", 0, "the object needs an 'mti' string")
    raw_fields = obj.get("fields", {})
    if not isinstance(raw_fields, Mapping):
        raise CodecError(None, 0, "'fields' must be an object")
    fields: dict[int, str] = {}
    for key, value in raw_fields.items():
        if not str(key).isdigit():
            raise CodecError(str(key), 0, "field keys are field numbers")
        fields[int(key)] = str(value)
    subs = obj.get("subfields", {})
    if not isinstance(subs, Mapping):
        raise CodecError(None, 0, "'subfields' must be an object")
    by_parent: dict[int, dict[str, str]] = {}
    for sub_id, value in subs.items():
        if dialect.subfield_spec(str(sub_id)) is None:
            raise CodecError(str(sub_id), 0, f"no such subfield in {dialect.name}")
        by_parent.setdefault(int(str(sub_id).split(".")[0]), {})[str(sub_id)] = str(value)
    for parent, parts in by_parent.items():
        joined = join_subfields(parent, parts, dialect)
        if parent in fields and fields[parent] != joined:
            raise CodecError(str(parent), 0, "field and its subfields disagree")
        fields[parent] = joined
    body = codec.encode(codec.message(obj["mti"], fields))
    fmt = dialect.framing
    try:
        tpdu = Tpdu.from_hex(str(obj["tpdu"])) if fmt.tpdu else None
        header = CupHeader.from_hex(str(obj["header"])) if fmt.cup_header else None
    except KeyError as exc:
        raise CodecError(str(exc.args[0]), 0, f"{dialect.name} frames need a {exc.args[0]}") from None
    except ValueError as exc:
        raise CodecError(None, 0, str(exc)) from None
    return encode_frame(fmt, body, tpdu=tpdu, header=header)
