"""A stand-in for AWS DMS in the local environment: a real PostgreSQL source replicated into the
staging bucket in the layout DMS's S3 target writes, so the staging bucket's real notifications
drive the CDC lake pipeline as DMS would.

moto stores a replication task but runs nothing. The stand-in reads what Terraform deployed (the
task's table mappings, the S3 target endpoint's settings, the source endpoint's secret) and does
the task's job the way DMS does it for a PostgreSQL source, through logical decoding with the
`test_decoding` plugin (the source needs `wal_level = logical`):

- `start()` creates the replication slot: changes are captured from then on (the task's start).
- `full_load()` writes each selected table as `<folder>/<schema>/<table>/LOAD%08X.csv` files
  (hexadecimal, from 1), `Op` = I on every row and the task's start time in the timestamp column
  (`include_op_for_full_load` and `use_task_start_time_for_full_load_timestamp`, as modules/dms
  sets them).
- `replicate()` writes the changes committed since the last call, one timestamp-named file per
  table (`YYYYMMDD-HHMMSSmmm.csv`): `Op` I, U or D, the commit time, the row (keys only for a
  delete, as DMS writes them from a default replica identity), and the change sequence when the
  mappings add one. Rows follow commit order; the sequence grows with the WAL position.

Files have a header row (the module's `add_column_name`) and PostgreSQL's text form of every
value; NULL is an empty field, an empty string `""`. The table mappings' selection rules (with %
wildcards) and remove-column rules are honoured; source filters are not (the stand-in refuses a
task that has them rather than replicate rows DMS would not).

    python -m scripts.localenv.dms_standin --endpoint http://127.0.0.1:5000 --task-arn arn:... --full-load
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import psycopg2
from psycopg2 import sql

SLOT = "dms_standin"
CHANGE_SEQUENCE_EXPRESSION = "$AR_H_CHANGE_SEQ"
DEFAULT_ROWS_PER_LOAD_FILE = 100_000
FLUSH_TIMEOUT_SECONDS = 10.0


class StandInError(RuntimeError):
    """The deployed task asks for something the stand-in cannot do, or the source refuses."""


@dataclass(frozen=True)
class Target:
    """Where and how the S3 target endpoint writes (its S3Settings)."""

    bucket: str
    folder: str
    timestamp_column: str
    sequence_column: str | None = None
    header: bool = True

    def key(self, schema: str, table: str, name: str) -> str:
        prefix = f"{self.folder}/" if self.folder else ""
        return f"{prefix}{schema}/{table}/{name}"


@dataclass(frozen=True)
class Selection:
    """One selection rule (`%` matches any run of characters), with the columns it removes."""

    schema: str
    table: str
    include: bool = True
    removed_columns: tuple[str, ...] = ()

    def matches(self, schema: str, table: str) -> bool:
        return _like(self.schema, schema) and _like(self.table, table)


@dataclass
class _Table:
    schema: str
    name: str
    columns: list[str]
    keys: list[str]
    rows: list[list[str | None]] = field(default_factory=list)


class DmsStandIn:
    def __init__(
        self, source_dsn: str, target: Target, selections: Sequence[Selection], s3: Any, *, slot: str = SLOT
    ) -> None:
        self.target = target
        self.selections = list(selections)
        self.s3 = s3
        self.slot = slot
        self.started_at: datetime | None = None
        self._conn = psycopg2.connect(source_dsn)
        self._conn.autocommit = True
        self._tables: dict[tuple[str, str], _Table] = {}
        self._last_name: dict[tuple[str, str], str] = {}

    # --- the task ----------------------------------------------------------------------------

    def start(self) -> datetime:
        """Create the replication slot: the task's start. Changes committed from now on are captured."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (self.slot,))
            cur.execute("SELECT now()")
            self.started_at = cur.fetchone()[0].astimezone(UTC)
        self._tables = {(t.schema, t.name): t for t in self._selected_tables()}
        return self.started_at

    def full_load(self, rows_per_file: int = DEFAULT_ROWS_PER_LOAD_FILE) -> list[str]:
        """Every selected table as LOAD files; returns the keys written."""
        if self.started_at is None:
            raise StandInError("start() the task before its full load")
        stamp = _timestamp(self.started_at)
        written = []
        for table in self._tables.values():
            columns = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in table.columns)
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                columns,
                sql.Identifier(table.schema, table.name),
                sql.SQL(", ").join(sql.Identifier(k) for k in table.keys) if table.keys else sql.SQL("1"),
            )
            with self._conn.cursor(name=None) as cur:
                cur.execute(query)
                number = 0
                while rows := cur.fetchmany(rows_per_file):
                    number += 1
                    body = self._file(table, (("I", stamp, list(row), None) for row in rows))
                    written.append(self._put(table, f"LOAD{number:08X}.csv", body))
        return written

    def replicate(self) -> list[str]:
        """The changes committed since the last call, one file per table that changed."""
        changes: dict[tuple[str, str], list[tuple[str, str, list[str | None], str]]] = defaultdict(list)
        for change in self._decoded_changes():
            table = self._tables.get((change.schema, change.table))
            if table is None:
                continue
            values = [change.values.get(c) for c in table.columns]
            changes[(table.schema, table.name)].append((change.op, change.commit_time, values, change.sequence))
        written = []
        for key, rows in changes.items():
            table = self._tables[key]
            written.append(self._put(table, self._change_file_name(key), self._file(table, iter(rows))))
        return written

    def close(self, *, drop_slot: bool = True) -> None:
        if drop_slot:
            with contextlib.suppress(psycopg2.Error), self._conn.cursor() as cur:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
        self._conn.close()

    def __enter__(self) -> DmsStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the mappings select ------------------------------------------------------------

    def _selected_tables(self) -> list[_Table]:
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            )
            candidates = cur.fetchall()
            tables = []
            for schema, name in candidates:
                rules = [s for s in self.selections if s.matches(schema, name)]
                if not rules or not any(r.include for r in rules) or any(not r.include for r in rules):
                    continue
                removed = {c for r in rules for c in r.removed_columns}
                cur.execute(
                    "SELECT a.attname, coalesce(a.attnum = ANY (i.indkey), false) FROM pg_attribute a "
                    "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
                    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    (sql.Identifier(schema, name).as_string(self._conn),),
                )
                attributes = cur.fetchall()
                columns = [c for c, _ in attributes if c not in removed]
                keys = [c for c, is_key in attributes if is_key]
                tables.append(_Table(schema, name, columns, keys))
        return tables

    # --- writing files -----------------------------------------------------------------------

    def _file(self, table: _Table, rows: Iterator[tuple[str, str, list[str | None], str | None]]) -> bytes:
        out = io.StringIO()
        header = ["Op", self.target.timestamp_column, *table.columns]
        if self.target.sequence_column:
            header.append(self.target.sequence_column)
        if self.target.header:
            out.write(",".join(header) + "\n")
        for op, stamp, values, sequence in rows:
            fields = [op, stamp, *values]
            if self.target.sequence_column:
                fields.append(sequence)
            out.write(",".join(_csv_field(v) for v in fields) + "\n")
        return out.getvalue().encode("utf-8")

    def _put(self, table: _Table, name: str, body: bytes) -> str:
        key = self.target.key(table.schema, table.name, name)
        self.s3.put_object(Bucket=self.target.bucket, Key=key, Body=body)
        return key

    def _change_file_name(self, table: tuple[str, str]) -> str:
        """`YYYYMMDD-HHMMSSmmm.csv` of now, later than the table's previous file."""
        name = f"{datetime.now(UTC):%Y%m%d-%H%M%S%f}"[:-3] + ".csv"
        previous = self._last_name.get(table)
        while previous is not None and name <= previous:
            time.sleep(0.001)
            name = f"{datetime.now(UTC):%Y%m%d-%H%M%S%f}"[:-3] + ".csv"
        self._last_name[table] = name
        return name

    # --- reading changes ---------------------------------------------------------------------

    def _decoded_changes(self) -> Iterator[Change]:
        self._wait_for_wal_flush()
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_get_changes(%s, NULL, NULL, "
                "'include-timestamp', 'on', 'include-xids', 'off')",
                (self.slot,),
            )
            pending: list[Change] = []
            for lsn, data in cur.fetchall():
                if data == "BEGIN":
                    pending = []
                elif data.startswith("COMMIT"):
                    committed = _commit_time(data)
                    for change in pending:
                        change.commit_time = committed
                    yield from pending
                elif data.startswith("table "):
                    pending.append(parse_change(data, _sequence(lsn, len(pending))))

    def _wait_for_wal_flush(self) -> None:
        """Decoding reads flushed WAL only: with asynchronous commits (the local servers run with
        synchronous_commit off) wait until everything inserted so far is flushed."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_insert_lsn()")
            inserted = cur.fetchone()[0]
            deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
            while True:
                cur.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (inserted,))
                if cur.fetchone()[0]:
                    return
                if time.monotonic() > deadline:
                    raise StandInError(
                        f"the source's WAL was not flushed to {inserted} within {FLUSH_TIMEOUT_SECONDS}s"
                    )
                time.sleep(0.02)

    # --- from the deployment -----------------------------------------------------------------

    @classmethod
    def from_task(cls, task_arn: str, *, dms: Any, secrets: Any, s3: Any, slot: str = SLOT) -> DmsStandIn:
        """The stand-in for a task Terraform deployed (to moto): its mappings, its S3 target's
        settings, and the source endpoint's secret (host, port, username, password)."""
        (task,) = dms.describe_replication_tasks(Filters=[{"Name": "replication-task-arn", "Values": [task_arn]}])[
            "ReplicationTasks"
        ]
        endpoints = {
            e["EndpointArn"]: e
            for e in dms.describe_endpoints(
                Filters=[{"Name": "endpoint-arn", "Values": [task["SourceEndpointArn"], task["TargetEndpointArn"]]}]
            )["Endpoints"]
        }
        source, settings = endpoints[task["SourceEndpointArn"]], endpoints[task["TargetEndpointArn"]]["S3Settings"]
        if source["EngineName"] != "postgres":
            raise StandInError(f"the stand-in reads PostgreSQL sources only, not {source['EngineName']}")
        if not settings.get("AddColumnName", False) or not settings.get("IncludeOpForFullLoad", False):
            raise StandInError("the S3 target must write a header row and the Op column on full-load rows")
        selections, sequence_column = mappings(json.loads(task["TableMappings"]))
        postgres = source.get("PostgreSQLSettings") or {}
        secret_id = postgres.get("SecretsManagerSecretId") or source.get("SecretsManagerSecretId")
        credentials = json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
        dsn = psycopg2.extensions.make_dsn(
            host=credentials["host"],
            port=credentials["port"],
            dbname=postgres.get("DatabaseName") or source.get("DatabaseName"),
            user=credentials["username"],
            password=credentials["password"],
            sslmode="require",
        )
        target = Target(
            bucket=settings["BucketName"],
            folder=settings.get("BucketFolder", ""),
            timestamp_column=settings["TimestampColumnName"],
            sequence_column=sequence_column,
        )
        return cls(dsn, target, selections, s3, slot=slot)


def mappings(document: dict[str, Any]) -> tuple[list[Selection], str | None]:
    """Selection rules (with their removed columns) and the change sequence column, from DMS table
    mappings JSON."""
    rules = document.get("rules", [])
    removed: dict[tuple[str, str], list[str]] = defaultdict(list)
    sequence = None
    for rule in rules:
        if rule.get("rule-type") != "transformation":
            continue
        locator = rule.get("object-locator", {})
        if rule.get("rule-action") == "remove-column":
            removed[(locator["schema-name"], locator["table-name"])].append(locator["column-name"])
        elif rule.get("rule-action") == "add-column" and rule.get("expression") == CHANGE_SEQUENCE_EXPRESSION:
            sequence = rule["value"]
        else:
            raise StandInError(f"the stand-in does not apply the transformation {rule.get('rule-name')!r}")
    selections = []
    for rule in rules:
        if rule.get("rule-type") != "selection":
            continue
        if rule.get("filters"):
            raise StandInError(f"the stand-in does not apply source filters (rule {rule.get('rule-name')!r})")
        locator = rule["object-locator"]
        schema, table = locator["schema-name"], locator["table-name"]
        selections.append(
            Selection(schema, table, rule.get("rule-action") == "include", tuple(removed.get((schema, table), ())))
        )
    return selections, sequence


# --- test_decoding output ----------------------------------------------------------------------


@dataclass
class Change:
    schema: str
    table: str
    op: str
    values: dict[str, str | None]
    sequence: str
    commit_time: str = ""


_HEAD = re.compile(
    r'table (?P<schema>"(?:[^"]|"")+"|[^.]+)\.(?P<table>"(?:[^"]|"")+"|[^:]+): (?P<op>INSERT|UPDATE|DELETE): '
)
_COLUMN = re.compile(r'\s*(?P<name>"(?:[^"]|"")+"|[^\[\s]+)\[(?P<type>.*?)\]:')
_OPS = {"INSERT": "I", "UPDATE": "U", "DELETE": "D"}


def parse_change(line: str, sequence: str) -> Change:
    """One `table <schema>.<table>: <OP>: name[type]:value ...` line of test_decoding."""
    head = _HEAD.match(line)
    if head is None:
        raise StandInError(f"unexpected test_decoding line: {line[:200]}")
    rest = line[head.end() :]
    if rest.startswith("old-key:"):
        # A changed key (or REPLICA IDENTITY FULL): DMS writes the new row.
        rest = rest.split("new-tuple:", 1)[1]
    if rest.strip() == "(no-tuple-data)":
        raise StandInError(f"{line[:120]}: the table has no replica identity; DMS needs a primary key")
    values: dict[str, str | None] = {}
    position = 0
    while position < len(rest):
        column = _COLUMN.match(rest, position)
        if column is None:
            raise StandInError(f"cannot read the columns of: {line[:200]}")
        position = column.end()
        value, position = _value(rest, position)
        if value != "unchanged-toast-datum":
            values[_unquote(column.group("name"))] = value
    return Change(
        _unquote(head.group("schema")), _unquote(head.group("table")), _OPS[head.group("op")], values, sequence
    )


def _value(text: str, position: int) -> tuple[str | None, int]:
    if text.startswith("'", position):
        out = []
        position += 1
        while True:
            end = text.index("'", position)
            out.append(text[position:end])
            if text.startswith("'", end + 1):  # '' is a quote inside the value
                out.append("'")
                position = end + 2
                continue
            return "".join(out), end + 1
    end = text.find(" ", position)
    end = len(text) if end < 0 else end
    token = text[position:end]
    return (None if token == "null" else token), end


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _commit_time(line: str) -> str:
    """`COMMIT (at 2026-03-01 12:00:00.123456+00)` -> the UTC time as DMS writes it."""
    match = re.search(r"\(at (.+)\)$", line)
    if match is None:
        raise StandInError(f"no commit time in {line!r}: decode with include-timestamp")
    return _timestamp(datetime.fromisoformat(match.group(1)))


def _sequence(lsn: str, index: int) -> str:
    """A 35-digit change sequence growing with the WAL position (DMS's $AR_H_CHANGE_SEQ is a
    fixed-width number, so text and numeric order agree)."""
    high, low = lsn.split("/")
    return f"{(int(high, 16) << 32 | int(low, 16)):030d}{index:05d}"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""
    if value == "" or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _like(pattern: str, name: str) -> bool:
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("%")), name) is not None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the moto server Terraform deployed to")
    parser.add_argument("--task-arn", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--full-load", action="store_true", help="start the task and write the full load")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between CDC files")
    args = parser.parse_args(argv)

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=args.endpoint, region_name=args.region)

    with DmsStandIn.from_task(
        args.task_arn, dms=client("dms"), secrets=client("secretsmanager"), s3=client("s3")
    ) as task:
        task.start()
        if args.full_load:
            print("\n".join(task.full_load()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(args.interval)
                for key in task.replicate():
                    print(key, flush=True)


if __name__ == "__main__":
    main()
