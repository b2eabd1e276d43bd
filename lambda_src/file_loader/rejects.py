"""What a load counts, and the rows it rejects: spooled, then copied into the rejects table."""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass, field
from typing import Any

from pipeline_common.identifiers import QualifiedName
from pipeline_common.ledger import Ledger, ObjectId

MAX_RAW_CHARS = 10_000


@dataclass
class Stats:
    lines: int = 0
    loaded: int = 0
    rejected: int = 0
    first_error: tuple[int | None, str] | None = None
    columns: list[str] = field(default_factory=list)


class RejectSpool:
    """Rejected rows, spilled to a temporary file past a few MB so memory stays bounded, then
    copied into the rejects table once the data COPY has finished with the connection. The file
    is opened by the first rejected row: most objects have none."""

    def __init__(self, obj: ObjectId, table: QualifiedName) -> None:
        self._prefix = [obj.bucket, obj.key, obj.version, str(table)]
        self._file: Any = None
        self._text: io.TextIOWrapper | None = None
        self._writer: Any = None
        self.count = 0

    def add(self, line: int | None, raw: str, reason: str) -> None:
        if self._writer is None:
            # Lives until close(), called by the load that owns the spool.
            self._file = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024, mode="w+b")  # noqa: SIM115
            self._text = io.TextIOWrapper(self._file, encoding="utf-8", newline="", write_through=True)
            self._writer = csv.writer(self._text)
        self._writer.writerow([*self._prefix, "" if line is None else line, printable(raw), reason])
        self.count += 1

    def flush_into(self, cur: Any, ledger: Ledger) -> None:
        if self._text is not None:
            self._text.flush()
            ledger.copy_rejects(cur, self._file)

    def close(self) -> None:
        if self._text is not None:
            self._text.close()


def reject(stats: Stats, spool: RejectSpool, line: int | None, raw: str, reason: str) -> None:
    """Count one bad row, remember the earliest, and spool it."""
    stats.rejected += 1
    if stats.first_error is None or (line is not None and (stats.first_error[0] or 0) > line):
        stats.first_error = (line, reason)
    spool.add(line, raw, reason)


def printable(raw: str) -> str:
    """A raw row as storable text: undecodable bytes as \\xNN, NUL (which text columns refuse)
    escaped, and capped in length."""
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "...[truncated]"
