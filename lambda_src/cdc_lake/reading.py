"""Reading DMS CSV files from S3: the first row's commit time (a bounded ranged read), row counts
(one streaming pass), and a decompressed byte stream for COPY. Memory stays constant in file size.

DMS writes a header row (the module sets `add_column_name`): `Op` first (I, U or D; the module
includes it in full loads too), the commit timestamp column, the table's columns, and the change
sequence column when one is added. Columns are found by name in the header, never by position.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from botocore.exceptions import ClientError

from cdc_lake.layout import commit_moment
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PermanentError

# A DMS row may hold large text or LOB values: allow fields far beyond csv's 128 KB default (the
# field is in memory either way; the limit only turns a large one into an error).
csv.field_size_limit(256 * 1024 * 1024)

OP_COLUMN = "Op"
OPERATIONS = ("I", "U", "D")
S3_CHUNK = 1024 * 1024
# The first row is looked for in the first 64 KB, then in up to 1 MB: rows are rarely longer.
FIRST_ROW_READS = (64 * 1024, 1024 * 1024)


class SourceGone(PermanentError):
    """The object version the notification announced is no longer there (deleted, or replaced in
    an unversioned bucket): the event's content cannot be read any more."""


class FileFormatError(PermanentError, ValueError):
    """The file is not a DMS CSV file this pipeline can read (no header, no timestamp column...)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class ObjectVersion:
    """One content of one key: pinned by version id when the event carries it, else by ETag."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None

    def get_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            arguments["VersionId"] = self.version_id
        elif self.etag:
            arguments["IfMatch"] = f'"{self.etag}"'
        return arguments


def get_object(s3: Any, version: ObjectVersion, **extra: Any) -> dict[str, Any]:
    try:
        return s3.get_object(**version.get_arguments(), **extra)  # type: ignore[no-any-return]
    except ClientError as exc:
        if is_gone(exc):
            raise SourceGone(f"s3://{version.bucket}/{version.key} is gone or changed: {exc}") from None
        raise


def is_gone(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412")


class _DeadlineReader(io.RawIOBase):
    """The S3 body as a raw stream that asks the deadline before every read."""

    def __init__(self, body: Any, deadline: Deadline, what: str) -> None:
        self._body = body
        self._deadline = deadline
        self._what = what
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._deadline.check(what=self._what)
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def open_stream(s3: Any, version: ObjectVersion, deadline: Deadline, *, compressed: bool) -> IO[bytes]:
    """The object's bytes, gunzipped when `compressed`, read in 1 MB pieces as they are consumed."""
    body = get_object(s3, version)["Body"]
    raw = io.BufferedReader(_DeadlineReader(body, deadline, f"reading s3://{version.bucket}/{version.key}"), S3_CHUNK)
    return gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[return-value]


def header_columns(line: bytes, where: str) -> list[str]:
    """The column names of a DMS header line."""
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    columns = next(csv.reader([text]), [])
    if not columns or any(not c for c in columns):
        raise FileFormatError(f"{where}: the first line is not a header row of column names: {text[:200]!r}", 1)
    return columns


def timestamp_index(columns: list[str], timestamp_column: str, where: str) -> int:
    try:
        return columns.index(timestamp_column)
    except ValueError:
        raise FileFormatError(
            f"{where}: the header has no {timestamp_column!r} column (the DMS endpoint's timestamp_column_name): "
            f"{columns[:20]}",
            1,
        ) from None


def first_commit_time(s3: Any, version: ObjectVersion, timestamp_column: str, *, compressed: bool) -> datetime | None:
    """The commit time of the file's first row, from a ranged read of its start (64 KB, then
    1 MB); None when the file has no row."""
    where = f"s3://{version.bucket}/{version.key}"
    for size in FIRST_ROW_READS:
        response = get_object(s3, version, Range=f"bytes=0-{size - 1}")
        data = response["Body"].read()
        whole = _total_size(response) <= size
        if compressed:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        text = data.decode("utf-8-sig", errors="replace")
        if not whole:
            text = text[: text.rfind("\n") + 1]  # only complete lines of a cut read
        header = first = error = None
        try:
            rows = csv.reader(io.StringIO(text, newline=""), strict=True)
            header = next(rows, None)
            first = next(rows, None)
        except csv.Error as exc:
            error = exc  # in a cut read: a quoted field runs past the cut, read more
        if first is not None and header is not None:
            index = timestamp_index(header, timestamp_column, where)
            if index >= len(first):
                raise FileFormatError(f"{where}: the first row has fewer columns than the header", 2)
            return commit_moment(first[index], f"{where} line 2")
        if whole:
            if error is not None:
                raise FileFormatError(f"{where}: the first row is not CSV: {error}", 2)
            if header is None:
                raise FileFormatError(f"{where}: the file is empty")
            return None
    raise FileFormatError(f"{where}: no complete first row in the first {FIRST_ROW_READS[-1]} bytes")


def _total_size(response: dict[str, Any]) -> int:
    content_range = response.get("ContentRange") or ""
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else int(response.get("ContentLength", 0))


@dataclass
class FileStats:
    """What one pass over a DMS CSV file finds: rows by operation and the commit time range."""

    rows: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    min_commit: str | None = None
    max_commit: str | None = None

    def as_details(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inserts": self.operations["I"],
            "updates": self.operations["U"],
            "deletes": self.operations["D"],
            "other_operations": self.rows - sum(self.operations[op] for op in OPERATIONS),
            "min_commit_ts": self.min_commit,
            "max_commit_ts": self.max_commit,
        }


def file_stats(stream: IO[bytes], timestamp_column: str, where: str) -> FileStats:
    """Count the rows of a DMS CSV stream by operation (a file without an Op column counts as
    inserts, as a full load without `include_op_for_full_load` is) and find its commit time range.
    The timestamps compare as text: DMS writes them fixed-width."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    rows: Iterator[list[str]] = csv.reader(text)
    stats = FileStats()
    header = next(rows, None)
    if header is None:
        return stats
    ts = timestamp_index(header, timestamp_column, where)
    op = 0 if header[0] == OP_COLUMN else None
    operations = stats.operations
    low = high = None
    count = 0
    try:
        for row in rows:
            count += 1
            operations[row[op] if op is not None else "I"] += 1
            stamp = row[ts]
            if low is None or stamp < low:
                low = stamp
            if high is None or stamp > high:
                high = stamp
    except (IndexError, csv.Error) as exc:
        raise FileFormatError(f"{where}: row {count} does not match the header: {exc}", count + 1) from None
    stats.rows, stats.min_commit, stats.max_commit = count, low, high
    return stats
