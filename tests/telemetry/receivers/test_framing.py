"""Framing, alone: syslog over a stream (octet counting and LF, detected per frame) and RELP.

The property tests cut one stream at every position (and into random pieces) and check the
decoder gives the same messages as when fed whole: a read boundary can fall anywhere.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from qorgan.telemetry.receivers.framing import (
    SAMPLE_BYTES,
    RelpDecoder,
    RelpError,
    RelpFrame,
    SyslogStreamDecoder,
    encode_relp,
    format_offers,
    parse_offers,
)


class Decoder:
    """A decoder and what it reported."""

    def __init__(self, max_message: int = 1024, oversize: str = "truncate") -> None:
        self.reports: list[tuple[str, bytes]] = []
        self.decoder = SyslogStreamDecoder(
            lambda reason, sample: self.reports.append((reason, sample)),
            max_message=max_message,
            oversize=oversize,
        )

    def run(self, *chunks: bytes) -> list[bytes]:
        out: list[bytes] = []
        for chunk in chunks:
            out += self.decoder.feed(chunk)
            assert self.decoder.pending <= self.decoder._max + 10
        return out + self.decoder.close()


def decode(*chunks: bytes, **options: object) -> list[bytes]:
    return Decoder(**options).run(*chunks)  # type: ignore[arg-type]


# --------------------------------------------------------------------- the framings


def test_lf_framing_with_cr_and_nul_delimiters() -> None:
    stream = b"<13>one\n<13>two\r\n<13>three\x00<13>four\x00\n\n<13>five"
    assert decode(stream) == [b"<13>one", b"<13>two", b"<13>three", b"<13>four", b"<13>five"]


def test_octet_counting_keeps_lf_nul_and_cr_inside_a_message() -> None:
    message = b"<13>multi\nline\x00with\r\nanything"
    stream = b"%d %s" % (len(message), message) + b"5 <13>x"
    assert decode(stream) == [message, b"<13>x"]


def test_octet_counting_drops_one_trailing_lf_as_rsyslog_does() -> None:
    """rsyslog's RSYSLOG_SyslogProtocol23Format ends messages with LF."""
    stream = b"8 <13>one\n9 <13>two\n\n1 \n5 <13>x"
    assert decode(stream) == [b"<13>one", b"<13>two\n", b"<13>x"]


def test_framing_is_detected_per_frame_as_rsyslog_does() -> None:
    stream = b"11 <13>counted<13>lf line\n7 <13>abc"
    assert decode(stream) == [b"<13>counted", b"<13>lf line", b"<13>abc"]


def test_digits_not_followed_by_a_space_begin_a_line() -> None:
    """A sender without <PRI> whose lines start with a timestamp is LF-framed, digits kept."""
    stream = b"2024-05-01T10:00:00Z host app: started\n12345\n"
    assert decode(stream) == [b"2024-05-01T10:00:00Z host app: started", b"12345"]


def test_bad_counts_are_read_as_lines() -> None:
    """A count of 0 or of ten digits is no octet count (RFC 6587: NONZERO-DIGIT, and we allow 9
    digits as RELP does): the frame is a line, as rsyslog reads it, and nothing is lost."""
    stream = b"0 zero is no count\n1234567890 is too long a count\n"
    assert decode(stream) == [b"0 zero is no count", b"1234567890 is too long a count"]


def test_count_larger_than_the_rest_is_reported_at_end_of_stream() -> None:
    decoder = Decoder()
    assert decoder.run(b"<13>fine\n", b"50 <13>cut short") == [b"<13>fine"]
    assert decoder.reports == [
        ("incomplete frame at end of stream: 13 of 50 octets received", b"<13>cut short")
    ]


def test_count_smaller_than_the_message_resynchronises_at_the_next_lf() -> None:
    """The octets past a count that was too small become a line of their own: garbled, but
    delivered, and the frames after it are read right."""
    stream = b"5 <13>abcdef\n<13>next\n"
    assert decode(stream) == [b"<13>a", b"bcdef", b"<13>next"]


def test_a_last_line_without_lf_is_a_message() -> None:
    assert decode(b"<13>a\n<13>unterminated") == [b"<13>a", b"<13>unterminated"]
    assert decode(b"<13>a\n<13>cr only\r") == [b"<13>a", b"<13>cr only"]
    assert decode(b"123") == [b"123"]


def test_invalid_utf8_passes_as_bytes() -> None:
    bad = b"<13>\xff\xfe\xc3( \xed\xa0\x80 end"
    assert decode(bad + b"\n", b"%d %s" % (len(bad), bad)) == [bad, bad]


def test_kazakh_text_is_octets_counted_not_characters() -> None:
    text = "<14>Қорған: жүйеге кіру сәтсіз аяқталды".encode()
    assert decode(b"%d %s" % (len(text), text)) == [text]


# --------------------------------------------------------------------- oversize


@pytest.mark.parametrize("oversize", ["truncate", "skip"])
def test_oversized_octet_counted_message(oversize: str) -> None:
    big = b"<13>" + b"x" * 96
    decoder = Decoder(max_message=10, oversize=oversize)
    out = decoder.run(b"%d %s5 <13>y" % (len(big), big))
    head = [b"<13>xxxxxx"] if oversize == "truncate" else []
    assert out == [*head, b"<13>y"]
    ((reason, sample),) = decoder.reports
    outcome = "truncated" if oversize == "truncate" else "skipped"
    assert reason == f"oversized message: 100 octets, over the limit of 10: {outcome}"
    assert sample == big[:10]


@pytest.mark.parametrize("oversize", ["truncate", "skip"])
def test_oversized_line_in_one_read_and_across_reads(oversize: str) -> None:
    line = b"<13>" + b"y" * 200
    for chunks in ([line + b"\n<13>z\n"], [line[:50], line[50:150], line[150:] + b"\n<13>z\n"]):
        decoder = Decoder(max_message=16, oversize=oversize)
        out = decoder.run(*chunks)
        assert out == ([line[:16]] if oversize == "truncate" else []) + [b"<13>z"]
        assert len(decoder.reports) == 1
        reason, sample = decoder.reports[0]
        assert reason.startswith("oversized message: a line longer than the limit of 16 octets")
        assert reason.endswith("truncated" if oversize == "truncate" else "skipped")
        assert line.startswith(sample)


def test_bulk_and_frame_by_frame_paths_agree_on_a_large_mixed_stream() -> None:
    """A read of many frames goes through the bulk paths; fed in small pieces, frame by frame."""
    parts = []
    for i in range(3000):
        message = b"<13>event %d" % i + b" x" * (i % 7)
        kind = i % 5
        if kind == 0:
            parts.append(b"%d %s" % (len(message), message))
        elif kind == 1:
            parts.append(message + b"\r\n")
        elif kind == 2:
            parts.append(b"2024-05-01 " + message + b"\n")
        else:
            parts.append(message + b"\n")
    stream = b"".join(parts)
    whole = decode(stream, max_message=40)
    assert len(whole) == 3000
    assert decode(*(stream[i : i + 7] for i in range(0, len(stream), 7)), max_message=40) == whole
    lines_only = b"".join(p for i, p in enumerate(parts) if i % 5 in (1, 3, 4))
    assert decode(lines_only) == decode(
        *(lines_only[i : i + 3] for i in range(0, len(lines_only), 3))
    )


def test_an_endless_line_is_never_held_whole() -> None:
    decoder = Decoder(max_message=1000)
    for _ in range(100):
        assert decoder.decoder.feed(b"a" * 10_000) in ([], [b"a" * 1000])
        assert decoder.decoder.pending <= 1001
    assert decoder.decoder.feed(b"\n<13>after\n") == [b"<13>after"]
    assert len(decoder.reports) == 1


def test_huge_count_is_discarded_without_being_held() -> None:
    decoder = Decoder(max_message=100, oversize="skip")
    out = decoder.decoder.feed(b"900000000 ")
    for _ in range(50):
        out += decoder.decoder.feed(b"z" * 100_000)
        assert decoder.decoder.pending <= SAMPLE_BYTES
    assert out == []
    decoder.decoder.abort("connection closed by the receiver's shutdown")
    assert decoder.reports[-1][0].startswith("connection closed by the receiver's shutdown")


def test_a_message_of_exactly_the_limit_with_cr_lf_is_whole() -> None:
    message = b"<13>" + b"m" * 12
    assert decode(message + b"\r", b"\n", max_message=16) == [message]
    assert decode(message[:-1] + b"\r\n", max_message=16) == [message[:-1]]


# --------------------------------------------------------------------- any split


def _reads_as_line(message: bytes) -> bool:
    """Whether ``message`` survives LF framing: no delimiter inside, no trailing CR, and no
    leading ``<count> `` that would make it look octet-counted."""
    if not message or b"\n" in message or b"\0" in message or message.endswith(b"\r"):
        return False
    count = re.match(rb"([0-9]{1,9}) ", message)
    return not (count and int(count[1]) > 0)


def _expected(messages: list[tuple[bytes, int]]) -> list[bytes]:
    """What the decoder gives: an octet-counted message loses one trailing LF (empty: none)."""
    out = []
    for message, style in messages:
        if style == 0 or not _reads_as_line(message):
            message = message.removesuffix(b"\n")
        if message:
            out.append(message)
    return out


def _encode(messages: list[tuple[bytes, int]]) -> bytes:
    out = bytearray()
    for message, style in messages:
        if style == 0 or not _reads_as_line(message):
            out += b"%d %s" % (len(message), message)
        else:
            out += message + (b"\n", b"\r\n", b"\x00")[style - 1]
    return bytes(out)


MESSAGES = st.lists(
    st.tuples(
        st.one_of(
            st.binary(min_size=1, max_size=30),
            st.text(min_size=1, max_size=12).map(lambda t: ("<13>" + t).encode()),
            st.sampled_from([b"1 ", b"2024-01-01", b"0 x", b"\r", b"12 abc", b"\xd2\x9a"]),
        ),
        st.integers(min_value=0, max_value=3),
    ),
    min_size=1,
    max_size=8,
)


@given(messages=MESSAGES)
@example(messages=[(b"1 ", 1)])
@example(messages=[(b"\r", 1), (b"0", 2)])
def test_a_stream_split_at_every_position_decodes_the_same(
    messages: list[tuple[bytes, int]],
) -> None:
    stream = _encode(messages)
    expected = _expected(messages)
    assert decode(stream) == expected  # the bulk paths where they apply
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == expected  # byte by byte
    for cut in range(1, len(stream)):
        assert decode(stream[:cut], stream[cut:]) == expected, cut


@given(messages=MESSAGES, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_a_stream_in_random_pieces_decodes_the_same(
    messages: list[tuple[bytes, int]], cuts: list[int]
) -> None:
    stream = _encode(messages)
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(*pieces) == _expected(messages)


@given(messages=MESSAGES, limit=st.integers(min_value=1, max_value=12))
def test_with_a_small_limit_any_split_truncates_the_same(
    messages: list[tuple[bytes, int]], limit: int
) -> None:
    stream = _encode(messages)
    whole = Decoder(max_message=limit)
    expected = whole.run(stream)
    assert all(len(m) <= limit for m in expected)
    for cut in range(1, len(stream)):
        split = Decoder(max_message=limit)
        assert split.run(stream[:cut], stream[cut:]) == expected, cut
        assert [r for r, _ in split.reports] == [r for r, _ in whole.reports], cut


# --------------------------------------------------------------------- RELP


def test_relp_frames_round_trip() -> None:
    frames = [
        RelpFrame(1, "open", b"relp_version=0\nrelp_software=librelp,1.11.0,\ncommands=syslog", 0),
        RelpFrame(2, "syslog", "<13>Қорған test\n".encode(), 0),
        RelpFrame(3, "close", b"", 0),
        RelpFrame(0, "serverclose", b"", 0),
    ]
    stream = b"".join(f.encode() for f in frames)
    assert stream.startswith(b"1 open 60 relp_version=0\n")
    assert b"3 close 0\n0 serverclose 0\n" in stream
    decoded = RelpDecoder().feed(stream)
    assert [(f.txnr, f.command, f.data) for f in decoded] == [
        (f.txnr, f.command, f.data) for f in frames
    ]
    for cut in range(1, len(stream)):
        decoder = RelpDecoder()
        again = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert again == decoded, cut


def test_relp_rsp_and_offers() -> None:
    assert encode_relp(7, "rsp", b"200 OK") == b"7 rsp 6 200 OK\n"
    offers = parse_offers(b"relp_version=0\nrelp_software=librelp,1.11.0,http://x\ncommands=syslog")
    assert offers == {
        "relp_version": ["0"],
        "relp_software": ["librelp", "1.11.0", "http://x"],
        "commands": ["syslog"],
    }
    assert parse_offers(format_offers(offers)) == offers
    assert RelpDecoder().feed(b"1 close 0 \n") == [RelpFrame(1, "close", b"", 0)]


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (b"x syslog 3 abc\n", "the transaction number is not 1 to 9 digits"),
        (b"1234567890 syslog 3 abc\n", "the transaction number is not 1 to 9 digits"),
        (b"1 sys-log 3 abc\n", "the command is not 1 to 32 letters"),
        (b"1 " + b"a" * 33 + b" 3 abc\n", "the command is not 1 to 32 letters"),
        (b"1 syslog x abc\n", "DATALEN is not 1 to 9 digits"),
        (b"1 syslog 3 abcd\n", "no LF after its 3 octets of data (wrong DATALEN?)"),
        (b"1 syslog 5 abc\n\n2", "no LF after its 5 octets of data"),
        (b"1 syslog 3\n", "DATALEN 3 but no data"),
        (b"1 close 0 x\n", "DATALEN 0 but data follows"),
        (b"\n1 close 0\n", "malformed RELP frame header"),
    ],
)
def test_malformed_relp_frames_raise_a_clear_error(stream: bytes, error: str) -> None:
    decoder = RelpDecoder()
    with pytest.raises(RelpError, match=re.escape(error)):
        decoder.feed(stream)
    with pytest.raises(RelpError):  # and the stream stays refused
        decoder.feed(b"2 close 0\n")


def test_relp_incomplete_frames_wait_for_more() -> None:
    decoder = RelpDecoder()
    for piece in (b"1", b"2 sys", b"log 1", b"0 01234", b"5678"):
        assert decoder.feed(piece) == []
    assert decoder.feed(b"9\n") == [RelpFrame(12, "syslog", b"0123456789", 10)]
    assert decoder.pending == 0


def test_relp_oversized_data_is_kept_up_to_the_limit_and_the_rest_skipped() -> None:
    body = bytes(range(256)) * 40
    stream = encode_relp(5, "syslog", body) + encode_relp(6, "syslog", b"<13>small")
    for cut in (0, 3, 20, 100, 5000, len(stream) - 12, len(stream) - 1):
        decoder = RelpDecoder(max_data=64)
        frames = (decoder.feed(stream[:cut]) if cut else []) + decoder.feed(stream[cut:])
        assert frames == [
            RelpFrame(5, "syslog", body[:64], len(body)),
            RelpFrame(6, "syslog", b"<13>small", 9),
        ]
        assert frames[0].oversized and not frames[1].oversized
        assert decoder.pending == 0


def test_relp_many_oversized_frames_in_one_read() -> None:
    stream = encode_relp(1, "syslog", b"abcdef") * 30_000
    frames = RelpDecoder(max_data=1).feed(stream)
    assert len(frames) == 30_000 and frames[-1] == RelpFrame(1, "syslog", b"a", 6)


def test_relp_encoder_refuses_what_it_cannot_frame() -> None:
    with pytest.raises(ValueError):
        encode_relp(1_000_000_000, "syslog", b"x")
    with pytest.raises(ValueError):
        encode_relp(1, "sys log", b"x")
