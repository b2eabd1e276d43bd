"""The CDC lake function's settings, read once per sandbox from the environment (docs/contracts.md).

Everything is checked before the first object is touched: a bad variable fails the first
invocation naming it, and so does an APPLY_TABLES entry with a typo in a key or a bad name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_common.config import (
    ConfigError,
    DatabaseSettings,
    env_bool,
    env_choice,
    env_identifier,
    env_int,
    env_json,
    env_optional,
    env_str,
)
from pipeline_common.identifiers import IdentifierError, QualifiedName, validate_identifier

PARTITION_MODES = ("arrival", "commit")
DATA_FORMATS = ("csv", "parquet")
# S3's limit for one CopyObject call: above it only a multipart copy works.
COPY_OBJECT_LIMIT = 5 * 1024**3
MIN_PART_SIZE = 5 * 1024**2
_APPLY_KEYS = {"source", "target", "key_columns"}


@dataclass(frozen=True)
class ApplyTable:
    """One replicated table applied to PostgreSQL: `source` as DMS names its folder
    (`schema/table` under the staging folder, written `schema.table`), `target` the table changes
    are applied to, `key_columns` its key (empty: the target's primary key)."""

    source_schema: str
    source_table: str
    target: QualifiedName
    key_columns: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"{self.source_schema}.{self.source_table}"


@dataclass(frozen=True)
class LakeConfig:
    staging_bucket: str
    staging_folder: str
    lake_bucket: str
    lake_prefix: str = ""
    partition_by: str = "arrival"
    data_format: str = "csv"
    timestamp_column: str = "dms_commit_ts"
    change_sequence_column: str | None = None
    count_rows: bool = True
    delete_staged: bool = False
    multipart_threshold: int = COPY_OBJECT_LIMIT
    multipart_chunk_size: int = 512 * 1024**2
    apply_tables: tuple[ApplyTable, ...] = ()
    database: DatabaseSettings | None = None
    state_schema: str = "pipeline_state"
    secret_ttl_seconds: int = 300

    def __post_init__(self) -> None:
        if self.partition_by == "commit" and self.data_format != "csv":
            raise ConfigError("PARTITION_BY=commit reads the first row's commit time: it needs DATA_FORMAT=csv")
        if self.apply_tables and self.data_format != "csv":
            raise ConfigError("APPLY_TABLES applies DMS CSV files: it needs DATA_FORMAT=csv")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LakeConfig:
        return cls(
            staging_bucket=env_str("STAGING_BUCKET", environ=environ),
            staging_folder=_folder("STAGING_FOLDER", env_str("STAGING_FOLDER", environ=environ)),
            lake_bucket=env_str("LAKE_BUCKET", environ=environ),
            lake_prefix=_folder("LAKE_PREFIX", env_str("LAKE_PREFIX", "", environ=environ), empty=True),
            partition_by=env_choice("PARTITION_BY", PARTITION_MODES, "arrival", environ=environ),
            data_format=env_choice("DATA_FORMAT", DATA_FORMATS, "csv", environ=environ),
            timestamp_column=env_identifier("TIMESTAMP_COLUMN", "dms_commit_ts", kind="column", environ=environ),
            change_sequence_column=_optional_identifier("CHANGE_SEQUENCE_COLUMN", environ),
            count_rows=env_bool("COUNT_ROWS", True, environ=environ),
            delete_staged=env_bool("DELETE_STAGED", False, environ=environ),
            multipart_threshold=env_int(
                "MULTIPART_THRESHOLD_BYTES",
                COPY_OBJECT_LIMIT,
                minimum=MIN_PART_SIZE,
                maximum=COPY_OBJECT_LIMIT,
                environ=environ,
            ),
            multipart_chunk_size=env_int(
                "MULTIPART_CHUNK_BYTES",
                512 * 1024**2,
                minimum=MIN_PART_SIZE,
                maximum=COPY_OBJECT_LIMIT,
                environ=environ,
            ),
            apply_tables=parse_apply_tables(env_json("APPLY_TABLES", [], environ=environ)),
            database=DatabaseSettings.from_env("DB", environ=environ),
            state_schema=env_identifier("STATE_SCHEMA", "pipeline_state", environ=environ),
            secret_ttl_seconds=env_int("SECRET_TTL_SECONDS", 300, minimum=0, environ=environ),
        )

    def apply_table(self, schema: str, table: str) -> ApplyTable | None:
        return next((t for t in self.apply_tables if (t.source_schema, t.source_table) == (schema, table)), None)


def parse_apply_tables(raw: Any) -> tuple[ApplyTable, ...]:
    """APPLY_TABLES: a JSON list of {"source": "schema.table", "target": "schema.table",
    "key_columns": [...]} (key_columns optional)."""
    if not isinstance(raw, list):
        raise ConfigError(f"APPLY_TABLES must be a JSON list, got {type(raw).__name__}")
    tables = []
    for index, entry in enumerate(raw):
        where = f"APPLY_TABLES[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object")
        unknown = sorted(set(entry) - _APPLY_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown} (expected {sorted(_APPLY_KEYS)})")
        try:
            source = QualifiedName.parse(entry.get("source", ""), engine="sqlserver")
            target = QualifiedName.parse(entry.get("target", ""))
            keys = entry.get("key_columns", [])
            if not isinstance(keys, list):
                raise ConfigError(f"{where}: key_columns must be a list of column names")
            key_columns = tuple(validate_identifier(k, "column") for k in keys)
        except IdentifierError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        tables.append(ApplyTable(source.schema, source.name, target, key_columns))
    sources = [t.source for t in tables]
    repeated = sorted({s for s in sources if sources.count(s) > 1})
    if repeated:
        raise ConfigError(f"APPLY_TABLES names {', '.join(repeated)} more than once")
    return tuple(tables)


def _folder(name: str, value: str, *, empty: bool = False) -> str:
    """A key prefix without leading or trailing slashes."""
    folder = value.strip("/")
    if (not folder and not empty) or "//" in folder or ".." in folder.split("/"):
        raise ConfigError(f"environment variable {name} must be a key prefix like dms/sales, got {value!r}")
    return folder


def _optional_identifier(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = env_optional(name, environ=environ)
    if value is None:
        return None
    try:
        return validate_identifier(value, "column")
    except IdentifierError as exc:
        raise ConfigError(f"environment variable {name}: {exc}") from None
