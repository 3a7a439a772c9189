"""The SSE frame parser, fed byte by byte and in odd chunks."""

from __future__ import annotations

import pytest

from app.client import SSEDecoder, SSEFrame


def decode(*chunks: bytes) -> list[SSEFrame]:
    decoder = SSEDecoder()
    frames = [frame for chunk in chunks for frame in decoder.feed(chunk)]
    return frames + decoder.close()


def bytewise(body: bytes) -> list[SSEFrame]:
    return decode(*(body[index : index + 1] for index in range(len(body))))


def test_a_frame_has_id_event_and_data() -> None:
    body = b'id: 7\nevent: run_started\ndata: {"a": 1}\n\n'
    expected = [SSEFrame(event="run_started", data='{"a": 1}', id="7")]
    assert decode(body) == expected
    assert bytewise(body) == expected


def test_data_lines_join_with_newlines_and_one_leading_space_is_dropped() -> None:
    assert decode(b"data:one\ndata:  two\ndata\n\n") == [SSEFrame(data="one\n two\n")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_of_the_format_is_understood(newline: bytes) -> None:
    body = newline.join([b"id: 1", b"data: x", b"", b"id: 2", b"data: y", b"", b""])
    assert bytewise(body) == [SSEFrame(data="x", id="1"), SSEFrame(data="y", id="2")]


def test_a_crlf_split_across_chunks_is_one_line_ending() -> None:
    assert decode(b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n") == [
        SSEFrame(data="x"),
        SSEFrame(data="y"),
    ]


def test_unicode_line_separators_inside_data_do_not_split_lines() -> None:
    text = 'data: {"t": "a\u2028b\u0085c\x0cd"}\n\n'
    assert bytewise(text.encode()) == [SSEFrame(data='{"t": "a\u2028b\u0085c\x0cd"}')]


def test_a_multibyte_character_split_across_chunks_is_decoded_whole() -> None:
    encoded = "data: é€😀\n\n".encode()
    assert bytewise(encoded) == [SSEFrame(data="é€😀")]


def test_comments_are_frames_without_data() -> None:
    assert decode(b": keep-alive\n\n:\n\n") == [
        SSEFrame(comments=("keep-alive",)),
        SSEFrame(comments=("",)),
    ]


def test_blank_lines_alone_and_unknown_fields_make_no_frame() -> None:
    assert decode(b"\n\n\nfoo: bar\n\nid: 3\n\n") == []


def test_a_frame_cut_off_by_the_end_of_the_body_is_dropped() -> None:
    assert decode(b"data: whole\n\ndata: half") == [SSEFrame(data="whole")]
    assert decode(b"data: whole\n\ndata: half\n") == [SSEFrame(data="whole")]


def test_retry_and_a_leading_byte_order_mark() -> None:
    assert decode(b"\xef\xbb\xbfretry: 1500\ndata: x\n\nretry: soon\ndata: y\n\n") == [
        SSEFrame(data="x", retry=1500),
        SSEFrame(data="y"),
    ]


def test_an_id_with_a_nul_character_is_ignored() -> None:
    assert decode(b"id: 1\x002\ndata: x\n\n") == [SSEFrame(data="x")]
