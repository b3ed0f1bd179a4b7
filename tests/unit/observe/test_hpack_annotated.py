"""The annotated HPACK decoder: RFC 7541 Appendix C byte for byte, every error
rule, agreement with ``hpack.Decoder`` on random lists, and fuzzing."""

from __future__ import annotations

import dataclasses

import hpack
import pytest
from hpack.hpack import encode_integer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.observe.hpack_annotated import (
    AnnotatedDecoder,
    FieldAnnotation,
    HeaderBlock,
    HpackDecodeError,
    Representation,
)

R = Representation


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


def _int(value: int, prefix_bits: int, pattern: int) -> bytes:
    encoded = encode_integer(value, prefix_bits)
    encoded[0] |= pattern
    return bytes(encoded)


def _wire(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _summary(block: HeaderBlock) -> list[tuple[object, ...]]:
    return [
        (f.representation, f.offset, f.wire_length, f.index, f.table, f.inserted)
        for f in block.fields
    ]


# --- RFC 7541 Appendix C.2: one representation each -----------------------


def test_c_2_1_literal_with_indexing_and_literal_name() -> None:
    decoder = AnnotatedDecoder()
    block = decoder.decode(_hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    assert block.headers == (("custom-key", "custom-header"),)
    (field,) = block.fields
    assert field == FieldAnnotation(
        representation=R.LITERAL_INCREMENTAL,
        offset=0,
        wire_length=26,
        name="custom-key",
        value="custom-header",
        index=None,
        table=None,
        name_huffman=False,
        name_wire_length=10,
        name_length=10,
        value_huffman=False,
        value_wire_length=13,
        value_length=13,
        new_table_size=None,
        inserted=True,
        evicted=(),
    )
    assert (block.table_size, block.table_entries, block.inserted) == (55, 1, 1)
    assert decoder.entries == (("custom-key", "custom-header"),)


def test_c_2_2_literal_without_indexing_and_indexed_name() -> None:
    decoder = AnnotatedDecoder()
    block = decoder.decode(_hex("040c 2f73 616d 706c 652f 7061 7468"))
    assert block.headers == ((":path", "/sample/path"),)
    (field,) = block.fields
    assert field.representation is R.LITERAL_WITHOUT_INDEXING
    assert (field.index, field.table) == (4, "static")
    assert (field.name_huffman, field.name_wire_length, field.name_length) == (None, None, None)
    assert (field.value_huffman, field.value_wire_length, field.value_length) == (False, 12, 12)
    assert not field.inserted
    assert (block.table_size, block.table_entries, decoder.entries) == (0, 0, ())


def test_c_2_3_literal_never_indexed() -> None:
    decoder = AnnotatedDecoder()
    block = decoder.decode(_hex("1008 7061 7373 776f 7264 0673 6563 7265 74"))
    assert block.headers == (("password", "secret"),)
    (field,) = block.fields
    assert field.representation is R.LITERAL_NEVER_INDEXED
    assert (field.index, field.name_length, field.value_length, field.wire_length) == (
        None,
        8,
        6,
        17,
    )
    assert block.table_size == 0


def test_c_2_4_indexed_field() -> None:
    block = AnnotatedDecoder().decode(b"\x82")
    assert block.headers == ((":method", "GET"),)
    assert _summary(block) == [(R.INDEXED, 0, 1, 2, "static", False)]
    field = block.fields[0]
    assert (field.value_huffman, field.value_wire_length, field.value_length) == (None, None, None)
    assert block.decoded_size == len(":method") + len("GET") + 32


# --- C.3 / C.4: request sequences sharing one context ----------------------

C3 = (
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
)
C4 = (
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
)
REQUESTS = (
    ((":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")),
    (
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ),
    (
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ),
)


@pytest.mark.parametrize(("blocks", "huffman"), [(C3, False), (C4, True)], ids=["C.3", "C.4"])
def test_c_3_and_c_4_request_sequence(blocks: tuple[str, ...], huffman: bool) -> None:
    decoder = AnnotatedDecoder()
    results = []
    for wire, expected, table_size in zip(blocks, REQUESTS, (57, 110, 164), strict=True):
        block = decoder.decode(_hex(wire))
        assert block.headers == expected
        assert block.table_size == table_size
        assert block.evicted == 0
        results.append(block)
    first, second, third = results
    assert _summary(first)[:3] == [
        (R.INDEXED, 0, 1, 2, "static", False),
        (R.INDEXED, 1, 1, 6, "static", False),
        (R.INDEXED, 2, 1, 4, "static", False),
    ]
    authority = first.fields[3]
    assert (authority.representation, authority.index, authority.table) == (
        R.LITERAL_INCREMENTAL,
        1,
        "static",
    )
    assert authority.value_huffman is huffman
    assert authority.value_wire_length == (12 if huffman else 15)
    assert authority.value_length == 15
    assert _summary(second)[3:] == [
        (R.INDEXED, 3, 1, 62, "dynamic", False),
        (R.LITERAL_INCREMENTAL, 4, 8 if huffman else 10, 24, "static", True),
    ]
    custom = third.fields[4]
    assert (custom.index, custom.table, custom.name_huffman, custom.value_huffman) == (
        None,
        None,
        huffman,
        huffman,
    )
    assert (custom.name_wire_length, custom.name_length) == ((8, 10) if huffman else (10, 10))
    assert (custom.value_wire_length, custom.value_length) == ((9, 12) if huffman else (12, 12))
    assert third.fields[3].index == 63
    assert decoder.entries == (
        ("custom-key", "custom-value"),
        ("cache-control", "no-cache"),
        (":authority", "www.example.com"),
    )


# --- C.5 / C.6: responses with a 256-byte table and evictions -------------

C5 = (
    """4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
    2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
    6c65 2e63 6f6d""",
    "4803 3330 37c1 c0bf",
    """88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
    54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
    5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
    3d31""",
)
C6 = (
    """4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
    2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3""",
    "4883 640e ffc1 c0bf",
    """88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
    77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
    9587 3160 65c0 03ed 4ee5 b106 3d50 07""",
)
DATE_21 = ("date", "Mon, 21 Oct 2013 20:13:21 GMT")
DATE_22 = ("date", "Mon, 21 Oct 2013 20:13:22 GMT")
LOCATION = ("location", "https://www.example.com")
PRIVATE = ("cache-control", "private")
COOKIE = ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
RESPONSES = (
    ((":status", "302"), PRIVATE, DATE_21, LOCATION),
    ((":status", "307"), PRIVATE, DATE_21, LOCATION),
    ((":status", "200"), PRIVATE, DATE_22, LOCATION, ("content-encoding", "gzip"), COOKIE),
)


@pytest.mark.parametrize(("blocks", "huffman"), [(C5, False), (C6, True)], ids=["C.5", "C.6"])
def test_c_5_and_c_6_responses_evict_oldest_first(blocks: tuple[str, ...], huffman: bool) -> None:
    decoder = AnnotatedDecoder(max_table_size=256)
    decoder.decode(b"\x3f\xe1\x01")  # size update to 256 (the examples assume it)
    assert decoder.table_max == 256
    first, second, third = (decoder.decode(_hex(b)) for b in blocks)
    assert (first.headers, second.headers, third.headers) == RESPONSES

    assert (first.table_size, first.table_entries, first.evicted) == (222, 4, 0)
    assert first.fields[0].value_huffman is huffman
    assert first.fields[0].value_wire_length == (2 if huffman else 3)

    # C.5.2: inserting ":status: 307" pushes out the oldest entry.
    assert second.table_size_before == 222
    assert (second.table_size, second.table_entries, second.inserted, second.evicted) == (
        222,
        4,
        1,
        1,
    )
    assert second.fields[0].evicted == ((":status", "302"),)
    assert _summary(second)[1:] == [
        (R.INDEXED, second.fields[1].offset, 1, 65, "dynamic", False),
        (R.INDEXED, second.fields[2].offset, 1, 64, "dynamic", False),
        (R.INDEXED, second.fields[3].offset, 1, 63, "dynamic", False),
    ]

    # C.5.3: three inserts, four evictions, oldest first.
    assert [f.evicted for f in third.fields] == [
        (),
        (),
        (PRIVATE,),
        (),
        (DATE_21,),
        (LOCATION, (":status", "307")),
    ]
    assert (third.table_size, third.table_entries, third.inserted, third.evicted) == (215, 3, 3, 4)
    assert decoder.entries == (COOKIE, ("content-encoding", "gzip"), DATE_22)
    assert third.decoded_size == sum(len(n) + len(v) + 32 for n, v in RESPONSES[2])


def test_memoryview_input_decodes_like_bytes() -> None:
    wire = _hex(C4[0])
    assert AnnotatedDecoder().decode(memoryview(wire)) == AnnotatedDecoder().decode(wire)


def test_fast_materialized_annotations_equal_constructed_ones() -> None:
    block = AnnotatedDecoder().decode(_hex(C5[0]))
    for field in block.fields:
        values = {f.name: getattr(field, f.name) for f in dataclasses.fields(FieldAnnotation)}
        assert FieldAnnotation(**values) == field
    assert block.fields == tuple(block.fields)
    assert len(block.fields) == 4
    assert block.fields[1:3] == tuple(block.fields)[1:3]


# --- dynamic table rules --------------------------------------------------


def test_entry_larger_than_table_empties_it_and_is_not_inserted() -> None:
    decoder = AnnotatedDecoder()
    decoder.decode(b"\x3f\x21" + b"\x40\x01a\x01b")  # size update to 64, insert a: b (34)
    assert decoder.entries == (("a", "b"),)
    block = decoder.decode(b"\x40\x01c" + bytes([31]) + b"x" * 31)  # 1 + 31 + 32 = 64: fits
    assert block.fields[0].inserted and block.fields[0].evicted == (("a", "b"),)
    block = decoder.decode(b"\x40\x01d" + bytes([32]) + b"y" * 32)  # 65 > 64
    (field,) = block.fields
    assert not field.inserted
    assert field.evicted == (("c", "x" * 31),)
    assert (block.table_size, block.table_entries, block.inserted, decoder.entries) == (0, 0, 0, ())


def test_size_update_evicts_and_reports_new_size() -> None:
    decoder = AnnotatedDecoder()
    decoder.decode(b"\x40\x01a\x01b\x40\x01c\x01d")
    block = decoder.decode(b"\x3f\x04\x82")  # size update to 35, then :method GET
    update = block.fields[0]
    assert update.representation is R.SIZE_UPDATE
    assert (update.new_table_size, update.name, update.value, update.wire_length) == (35, "", "", 2)
    assert update.evicted == (("a", "b"),)
    assert (block.table_max, block.table_size, block.headers) == (35, 34, ((":method", "GET"),))


def test_sizes_count_utf8_bytes_not_characters() -> None:
    decoder = AnnotatedDecoder()
    name = "é".encode()
    block = decoder.decode(b"\x40\x02" + name + b"\x01x")
    assert block.headers == (("é", "x"),)
    assert block.table_size == 2 + 1 + 32 == block.decoded_size
    assert block.fields[0].name_length == 2
    block = decoder.decode(b"\x7e\x02\xc3\xa9")  # indexed name 62 ("é"), value "é"
    assert block.fields[0].table == "dynamic"
    assert block.table_size == 35 + 2 + 2 + 32


def test_invalid_utf8_is_kept_losslessly() -> None:
    block = AnnotatedDecoder().decode(b"\x00\x01n\x02\xff\xfe")
    ((name, value),) = block.headers
    assert name == "n"
    assert _wire(value) == b"\xff\xfe"
    assert block.fields[0].value_length == 2


def test_shrunk_setting_requires_a_size_update_first() -> None:
    decoder = AnnotatedDecoder()
    decoder.max_allowed_table_size = 100
    with pytest.raises(HpackDecodeError, match="SETTINGS_HEADER_TABLE_SIZE"):
        decoder.decode(b"\x82")
    decoder = AnnotatedDecoder()
    decoder.max_allowed_table_size = 100
    block = decoder.decode(_int(100, 5, 0x20) + b"\x82")
    assert block.table_max == 100


def test_table_size_setting_rejects_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        AnnotatedDecoder(max_table_size=-1)


# --- errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "offset", "message"),
    [
        pytest.param(b"\x82\x80", 1, "index 0", id="index-0"),
        pytest.param(b"\xbe", 0, "index 62 out of range", id="index-out-of-range"),
        pytest.param(b"\x82\x7e\x01a", 1, "index 62 out of range", id="name-index-out-of-range"),
        pytest.param(_int(4097, 5, 0x20), 0, "exceeds the allowed maximum", id="size-too-big"),
        pytest.param(b"\x82\x3f\x01", 1, "after the first header field", id="size-not-at-start"),
        pytest.param(b"\x40\x05ab", 1, "truncated name string", id="truncated-name"),
        pytest.param(b"\x04\x05/ab", 1, "truncated value string", id="truncated-value"),
        pytest.param(b"\x40\x01a", 3, "before the value string", id="missing-value"),
        pytest.param(b"\xff", 0, "truncated integer", id="truncated-integer"),
        pytest.param(b"\xff\x80\x80\x80\x80\x80\x00", 0, "over-long", id="over-long-integer"),
        pytest.param(b"\xff\xff\xff\xff\xff\x7f", 0, "too large", id="huge-integer"),
        pytest.param(b"\x00\x01a\x81\x00", 4, "invalid Huffman value", id="huffman-bad-padding"),
        pytest.param(b"\x00\x81\xff\x01a", 2, "invalid Huffman name", id="huffman-padding-8-bits"),
        pytest.param(b"\x00\x01a\x84\xff\xff\xff\xff", 4, "invalid Huffman", id="huffman-eos"),
    ],
)
def test_malformed_block_raises_decode_error(wire: bytes, offset: int, message: str) -> None:
    with pytest.raises(HpackDecodeError, match=message) as caught:
        AnnotatedDecoder().decode(wire)
    assert caught.value.offset == offset
    assert f"at byte {offset}" in str(caught.value)
    assert caught.value.rfc in str(caught.value) and caught.value.rfc.startswith("RFC 7541 §")
    with pytest.raises(hpack.HPACKDecodingError):  # the reference agrees it is malformed
        hpack.Decoder().decode(wire, raw=True)


# --- agreement with hpack.Decoder -----------------------------------------


def _reference(decoder: hpack.Decoder, wire: bytes) -> list[tuple[bytes, bytes]] | None:
    try:
        return [(bytes(n), bytes(v)) for n, v in decoder.decode(wire, raw=True)]
    except hpack.HPACKDecodingError:
        return None


def _ours(decoder: AnnotatedDecoder, wire: bytes) -> list[tuple[bytes, bytes]] | None:
    try:
        block = decoder.decode(wire)
    except HpackDecodeError:
        return None
    assert block.wire_length == len(wire)
    assert sum(f.wire_length for f in block.fields) == len(wire)
    return [(_wire(n), _wire(v)) for n, v in block.headers]


_names = st.one_of(
    st.sampled_from([":path", "cookie", "user-agent", "x-custom", "accept", "date"]),
    st.text(min_size=1, max_size=20),
    st.binary(min_size=1, max_size=20),
)
_values = st.one_of(st.text(max_size=60), st.binary(max_size=60))
_header = st.tuples(_names, _values, st.booleans())
_block = st.tuples(
    st.lists(_header, max_size=15),
    st.booleans(),
    st.none() | st.integers(min_value=0, max_value=4096),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_block, min_size=1, max_size=8))
def test_random_lists_decode_like_hpack_decoder(
    blocks: list[tuple[list[tuple[str | bytes, str | bytes, bool]], bool, int | None]],
) -> None:
    encoder = hpack.Encoder()
    reference = hpack.Decoder(max_header_list_size=2**32)
    ours = AnnotatedDecoder()
    for headers, huffman, new_size in blocks:
        if new_size is not None:
            encoder.header_table_size = new_size
        tuples = []
        for name, value, sensitive in headers:
            n = name if isinstance(name, bytes) else name.encode()
            v = value if isinstance(value, bytes) else value.encode()
            tuples.append(
                hpack.NeverIndexedHeaderTuple(n, v) if sensitive else hpack.HeaderTuple(n, v)
            )
        wire = encoder.encode(tuples, huffman=huffman)
        expected = [(bytes(n), bytes(v)) for n, v in tuples]
        assert _reference(reference, wire) == expected
        assert _ours(ours, wire) == expected
        assert ours.table_max == reference.header_table_size
        assert ours.entries == tuple(
            (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for n, v in reference.header_table.dynamic_entries
        )


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_fuzz_random_bytes_agree_with_hpack_decoder(first: bytes, second: bytes) -> None:
    reference = hpack.Decoder(max_header_list_size=2**32)
    ours = AnnotatedDecoder()
    for wire in (first, second):
        expected = _reference(reference, wire)
        assert _ours(ours, wire) == expected
        if expected is None:
            break  # both contexts are broken now


_VALID = [_hex(b) for b in (*C3, *C4)] + [_hex(C5[0]), _hex(C6[0])]


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(_VALID),
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 255), st.sampled_from(["set", "del", "ins"])),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_blocks_only_raise_decode_errors(
    wire: bytes, mutations: list[tuple[int, int, str]]
) -> None:
    mutated = bytearray(wire)
    for position, byte, kind in mutations:
        at = position % (len(mutated) + 1)
        if kind == "ins":
            mutated.insert(at, byte)
        elif mutated and at < len(mutated):
            if kind == "set":
                mutated[at] = byte
            else:
                del mutated[at]
    reference = hpack.Decoder(max_header_list_size=2**32)
    ours = AnnotatedDecoder()
    for block in (_hex(C3[0]), bytes(mutated)):  # a warm table gives indexes something to hit
        expected = _reference(reference, block)
        assert _ours(ours, block) == expected
        if expected is None:
            break


# ----------------------------------------------------------- repeated blocks


def test_a_repeated_table_neutral_block_is_the_same_record_while_the_table_holds() -> None:
    enc = hpack.Encoder()
    dec = AnnotatedDecoder()
    fields = [(":method", "GET"), (":path", "/api"), ("x-id", "7")]
    first = dec.decode(enc.encode(fields))  # inserts :path and x-id
    again = enc.encode(fields)  # every field indexed now: changes nothing
    second = dec.decode(again)
    assert second.inserted == 0 and second.evicted == 0
    assert dec.decode(bytes(again)) is second
    assert second.headers == first.headers == tuple(fields)
    assert [f.representation for f in second.fields] == [R.INDEXED] * 3
    # A block that changes the table ends the reuse: the same bytes now mean
    # other entries (index 62 is the newest one).
    dec.decode(enc.encode([("x-other", "1")]))
    third = dec.decode(again)
    assert third is not second
    assert third.headers == ((":method", "GET"), ("x-id", "7"), ("x-other", "1"))


def test_a_repeated_block_is_checked_against_a_lowered_table_limit() -> None:
    enc = hpack.Encoder()
    dec = AnnotatedDecoder()
    dec.decode(enc.encode([("x-id", "7")]))
    block = enc.encode([("x-id", "7")])
    dec.decode(block)
    dec.max_allowed_table_size = 100  # SETTINGS acknowledged: a size update is now due
    with pytest.raises(HpackDecodeError, match="exceeds the acknowledged"):
        dec.decode(block)
