"""Where a DMS file came from and where it goes in the lake: keys and partitions, no I/O.

DMS writes `<folder>/<schema>/<table>/LOAD%08X.csv` for a full load (hexadecimal numbers from 1)
and a timestamp-named file (`20260301-120000123.csv`) per batch of changes. The lake keeps the
schema and the table in the key, so the `LOAD00000001.csv` of two tables written in the same hour
never meet: `<prefix>/<schema>/<table>/year=YYYY/month=MM/day=DD/hour=HH/<file>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline_common.errors import PermanentError

_LOAD_FILE = re.compile(r"LOAD([0-9A-F]{8})\.")
FIRST_LOAD_FILE = 1


class LayoutError(PermanentError, ValueError):
    """A key, file name or timestamp is not what DMS writes."""


@dataclass(frozen=True)
class StagedFile:
    """A file DMS wrote for one table: `load_number` is set for full-load files."""

    key: str
    schema: str
    table: str
    name: str
    load_number: int | None

    @property
    def is_full_load(self) -> bool:
        return self.load_number is not None

    @property
    def starts_a_load(self) -> bool:
        """The first file of a full load: seeing it again means DMS loaded the table again."""
        return self.load_number == FIRST_LOAD_FILE

    @property
    def compressed(self) -> bool:
        return self.name.endswith(".gz")


def staged_file(key: str, folder: str) -> StagedFile | None:
    """The file `key` names under the staging `folder`, or None when DMS would not write that key
    (another prefix, a different depth, an empty part)."""
    prefix = f"{folder}/" if folder else ""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    schema, table, name = parts
    match = _LOAD_FILE.match(name)
    return StagedFile(key, schema, table, name, int(match.group(1), 16) if match else None)


def lake_key(prefix: str, staged: StagedFile, moment: datetime, name: str | None = None) -> str:
    """The lake key of `staged` in the hour partition of `moment` (UTC); `name` replaces the file
    name (a restarted full load's files, see `generation_name`)."""
    moment = moment.astimezone(UTC)
    partition = f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}"
    path = f"{staged.schema}/{staged.table}/{partition}/{name or staged.name}"
    return f"{prefix}/{path}" if prefix else path


def generation_name(name: str, generation: int) -> str:
    """The lake name of a full-load file of the `generation`th load of its table: the first load
    keeps DMS's name, a later one adds `.g<N>` before the extension (`LOAD00000001.g2.csv`), so a
    reload in the same hour never replaces the earlier load's files."""
    if generation <= 1:
        return name
    stem, dot, extension = name.partition(".")
    return f"{stem}.g{generation}{dot}{extension}"


def event_moment(event_time: str | None, key: str) -> datetime:
    """The arrival time S3 put on the notification (ISO 8601, `Z` or an offset), in UTC."""
    if not event_time:
        raise LayoutError(f"the notification of {key} carries no eventTime to partition by")
    try:
        moment = datetime.fromisoformat(event_time)
    except ValueError:
        raise LayoutError(f"the notification of {key} has an unreadable eventTime {event_time!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def commit_moment(value: str, what: str) -> datetime:
    """A DMS timestamp column value (`yyyy-MM-dd HH:mm:ss.SSSSSS`, UTC) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LayoutError(f"{what}: {value!r} is not a DMS timestamp (yyyy-MM-dd HH:mm:ss.SSSSSS)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
