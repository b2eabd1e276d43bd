"""Byte streams and record framing for the formats the loader reads.

Everything is a generator over bounded chunks: an object of any size passes through in
constant memory. The fast path hands PostgreSQL the raw bytes after the header; Python only
frames records itself (with physical line numbers) on the error path and for JSON lines.
"""

from __future__ import annotations

import codecs
import csv
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline_common.errors import PermanentError
from pipeline_common.pgload import IterStream

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = codecs.BOM_UTF8
# A gzip member may expand a thousandfold; cap what one decompress call may produce.
MAX_INFLATE_CHUNK = 4 * 1024 * 1024


class FormatError(PermanentError, ValueError):
    """The object as a whole cannot be read in the route's format (not a per-row problem): it is
    rejected, since reading it again gives the same result."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def peek(chunks: Iterable[bytes], size: int = 2) -> tuple[bytes, Iterator[bytes]]:
    """The first `size` bytes and an iterator that still yields everything."""
    iterator = iter(chunks)
    head = b""
    pending: list[bytes] = []
    for chunk in iterator:
        pending.append(chunk)
        head += chunk
        if len(head) >= size:
            break

    def replay() -> Iterator[bytes]:
        yield from pending
        yield from iterator

    return head[:size], replay()


def gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream, including concatenated members (as `cat a.gz b.gz` makes)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    fed = False
    for chunk in chunks:
        data = chunk
        while True:
            fed = fed or bool(data)
            try:
                out = decompressor.decompress(data, MAX_INFLATE_CHUNK)
            except zlib.error as exc:
                # Damaged data stays damaged: reject the object instead of retrying it to the DLQ.
                raise FormatError(f"gzip data is corrupt: {exc}") from None
            if out:
                yield out
            if decompressor.eof:
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                fed = False
                if not data:
                    break
                continue
            data = decompressor.unconsumed_tail
            # Output capped by max_length may still be pending inside zlib: drain before reading on.
            if not data and not out:
                break
    if fed and not decompressor.eof:
        raise FormatError("gzip data is truncated")


def decompressed(chunks: Iterable[bytes], compression: str, content_encoding: str | None = None) -> Iterator[bytes]:
    """Apply the route's compression setting: `auto` sniffs the gzip magic bytes."""
    head, stream = peek(chunks)
    is_gzip = head == GZIP_MAGIC
    if compression == "gzip" or (compression == "auto" and is_gzip):
        if not is_gzip and head:
            raise FormatError("route or Content-Encoding says gzip but the object is not gzip data")
        return gunzip(stream)
    if compression == "auto" and content_encoding and "gzip" in content_encoding.lower() and head and not is_gzip:
        raise FormatError(f"Content-Encoding is {content_encoding!r} but the object is not gzip data")
    return stream


@dataclass(frozen=True)
class CsvHeader:
    columns: list[str]
    lines: int  # physical lines the header took


def split_csv_header(
    chunks: Iterable[bytes], *, delimiter: str, quote: str, codec: str, max_bytes: int = 1024 * 1024
) -> tuple[CsvHeader | None, Iterator[bytes]]:
    """Read the header record; return it and the remaining bytes (the data records, untouched).

    None for an empty object. The header ends at the first line ending outside quotes: LF, CRLF
    or a lone CR (PostgreSQL's COPY reads all three). It may quote names and span lines; it may
    not exceed `max_bytes` (a file without line endings would otherwise be read whole).
    """
    iterator = iter(chunks)
    buffer = b""
    quote_byte = quote.encode(codec)[0]
    end = -1
    scanned = 0
    in_quote = False
    for chunk in iterator:
        buffer += chunk
        end, scanned, in_quote = _record_end(buffer, scanned, in_quote, quote_byte)
        if end >= 0:
            break
        if len(buffer) > max_bytes:
            raise FormatError(f"no end of the header row in the first {max_bytes} bytes", line=1)
    if not buffer:
        return None, iter(())
    header_bytes, rest = (buffer, b"") if end < 0 else (buffer[:end], buffer[end:])
    if codec == "utf-8" and header_bytes.startswith(UTF8_BOM):
        header_bytes = header_bytes[len(UTF8_BOM) :]
    try:
        text = header_bytes.decode(codec)
    except UnicodeDecodeError as exc:
        raise FormatError(f"header row is not valid {codec}: {exc.reason}", line=1) from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote, strict=True))
    except csv.Error as exc:
        raise FormatError(f"header row is not valid CSV: {exc}", line=1) from None
    if not rows or not any(rows[0]):
        raise FormatError("the header row is empty", line=1)
    header = CsvHeader(columns=[name.strip() for name in rows[0]], lines=_line_count(text))

    def remaining() -> Iterator[bytes]:
        if rest:
            yield rest
        yield from iterator

    return header, remaining()


_LF, _CR = ord("\n"), ord("\r")


def _record_end(buffer: bytes, start: int, in_quote: bool, quote: int) -> tuple[int, int, bool]:
    """Index just past the line ending (LF, CRLF or CR) of the first record, scanning from `start`,
    and where to scan from next time; -1 when not seen yet. A CR at the end of the buffer waits for
    the next byte, which may be its LF."""
    position = start
    while position < len(buffer):
        byte = buffer[position]
        if byte == quote:
            in_quote = not in_quote
        elif byte == _LF and not in_quote:
            return position + 1, position + 1, in_quote
        elif byte == _CR and not in_quote:
            if position + 1 == len(buffer):
                return -1, position, in_quote
            return position + (2 if buffer[position + 1] == _LF else 1), position + 1, in_quote
        position += 1
    return -1, position, in_quote


@dataclass(frozen=True)
class Record:
    line: int  # physical line the record starts on, 1-based, counting the header
    raw: str  # the record's text as in the file, line ending included
    undecodable: bool = False


def text_lines(chunks: Iterable[bytes], codec: str) -> Iterator[str]:
    """Lines with their endings; undecodable bytes become surrogates so one bad row does not end
    the stream (the caller rejects that row)."""
    if codec == "utf-8":
        codec = "utf-8-sig"
    reader = io.TextIOWrapper(
        io.BufferedReader(IterStream(chunks), buffer_size=256 * 1024),
        encoding=codec,
        errors="surrogateescape",
        newline="",
    )
    yield from reader


def csv_records(lines: Iterable[str], *, delimiter: str, quote: str, first_line: int = 1) -> Iterator[Record]:
    """Frame CSV records, tracking the physical line each starts on (quoted fields may hold
    newlines, so records and lines differ). The fields are left to PostgreSQL to parse."""
    captured: list[str] = []

    def feed() -> Iterator[str]:
        for line in lines:
            captured.append(line)
            yield line

    # csv.reader pulls exactly the lines of one record before returning it, so `captured`
    # holds that record's text when it arrives.
    reader = csv.reader(feed(), delimiter=delimiter, quotechar=quote)
    line = first_line
    while True:
        try:
            next(reader)
        except StopIteration:
            break
        except csv.Error:
            # An unterminated quote swallowed the rest of the file: hand it to PostgreSQL as one
            # record, which rejects it with a reason.
            pass
        raw = "".join(captured)
        captured.clear()
        if not raw:
            break
        if raw not in _LINE_ENDINGS:  # a blank line is no record, as in JSON lines
            yield Record(line=line, raw=raw, undecodable=_has_surrogates(raw))
        line += _line_count(raw)


def jsonl_records(lines: Iterable[str], first_line: int = 1) -> Iterator[Record]:
    for number, raw in enumerate(lines, start=first_line):
        yield Record(line=number, raw=raw, undecodable=_has_surrogates(raw))


_LINE_ENDINGS = frozenset({"\n", "\r\n", "\r"})


def without_line_ending(raw: str) -> str:
    """A record's text without the one line ending that ends it (LF, CRLF or CR)."""
    if raw.endswith("\r\n"):
        return raw[:-2]
    return raw[:-1] if raw.endswith(("\n", "\r")) else raw


def _line_count(text: str) -> int:
    # Lines end in \n, \r\n or a lone \r (as the text reader split them).
    return text.count("\n") + text.count("\r") - text.count("\r\n") or 1


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
