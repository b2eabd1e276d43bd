"""Routes: which objects load into which table, and how.

`ROUTES` is a JSON list; the first route whose `prefix` (and `suffix`, when set) matches a key
wins, so list specific prefixes before general ones. Fields:

- `prefix` (string, required): key prefix, e.g. `"incoming/orders/"`; `""` matches every key.
- `suffix` (string): key suffix, e.g. `".csv.gz"`.
- `table` (string, required): target `schema.table`. `{name}` stands for the first key
  component after the prefix (`raw.{name}` + `incoming/orders/x.csv` -> `raw.orders`); it is
  validated as an identifier before any SQL is built.
- `format`: `csv` (default; a header row names the columns) or `jsonl` (one object per line,
  keys are columns).
- `mode`: `append` (default) or `upsert` (COPY into a temporary table, then
  `INSERT ... ON CONFLICT (key_columns) DO UPDATE`; the last row of a repeated key wins).
- `key_columns` (list of strings): conflict target for `upsert`; default the table's primary key.
  Any name PostgreSQL accepts (`order id`, `prénom`): columns are quoted by the driver.
- `on_error`: `reject_object` (default; one bad row rejects the whole object, nothing loads) or
  `quarantine` (good rows load, bad rows go to `<STATE_SCHEMA>.file_rejects`).
- `compression`: `auto` (default; gzip when the data starts with the gzip magic bytes), `gzip`,
  `none`.
- CSV only: `delimiter` (default `,`), `quote` (default `"`), `escape` (default: the quote),
  `null` (the unquoted text that means NULL, default empty).
- `encoding`: the file's encoding (default `UTF8`; also `LATIN1`, `LATIN2`, `LATIN9`, `WIN1250`,
  `WIN1251`, `WIN1252`, `SQL_ASCII`; case, dashes and common aliases such as `utf-8`, `latin-1`,
  `iso-8859-15`, `cp1252` are accepted).
- The CSV fields and `encoding` may also be nested under `csv` (`"csv": {"delimiter": ";"}`), as
  the Terraform module passes them.

Errors name the route index and the field: `ROUTES[2].mode: must be one of append, upsert`.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_common.config import ConfigError
from pipeline_common.errors import PermanentError
from pipeline_common.identifiers import IdentifierError, QualifiedName, quotable_identifier, validate_identifier

FORMATS = ("csv", "jsonl")
MODES = ("append", "upsert")
ON_ERROR = ("reject_object", "quarantine")
COMPRESSION = ("auto", "gzip", "none")
NAME_PLACEHOLDER = "{name}"

# PostgreSQL encoding name -> Python codec, for the few places Python reads the text itself
# (the header, and rows on the error path). PostgreSQL converts the bulk of the data.
ENCODINGS = {
    "UTF8": "utf-8",
    "LATIN1": "latin-1",
    "LATIN2": "iso8859-2",
    "LATIN9": "iso8859-15",
    "WIN1250": "cp1250",
    "WIN1251": "cp1251",
    "WIN1252": "cp1252",
    "SQL_ASCII": "ascii",
}

_FIELDS = {
    "prefix",
    "suffix",
    "table",
    "format",
    "mode",
    "key_columns",
    "on_error",
    "compression",
    "delimiter",
    "quote",
    "escape",
    "null",
    "encoding",
    "csv",
}
CSV_FIELDS = ("delimiter", "quote", "escape", "null", "encoding")
ENCODING_ALIASES = {
    "ISO88591": "LATIN1",
    "ISO88592": "LATIN2",
    "ISO885915": "LATIN9",
    "CP1250": "WIN1250",
    "CP1251": "WIN1251",
    "CP1252": "WIN1252",
    "WINDOWS1252": "WIN1252",
    "ASCII": "SQL_ASCII",
}


class RouteError(PermanentError, ValueError):
    """An object's key cannot be turned into a valid target (for example a hostile `{name}`)."""


@dataclass(frozen=True)
class Route:
    index: int
    prefix: str
    table: str
    suffix: str | None = None
    format: str = "csv"
    mode: str = "append"
    key_columns: tuple[str, ...] = ()
    on_error: str = "reject_object"
    compression: str = "auto"
    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    null: str = ""
    encoding: str = "UTF8"

    def matches(self, key: str) -> bool:
        return key.startswith(self.prefix) and (self.suffix is None or key.endswith(self.suffix))

    @property
    def python_codec(self) -> str:
        return ENCODINGS[self.encoding]

    def target(self, key: str) -> QualifiedName:
        """The target table for `key`; raises `RouteError` when `{name}` yields no valid identifier."""
        if NAME_PLACEHOLDER not in self.table:
            return QualifiedName.parse(self.table)
        rest = key[len(self.prefix) :]
        name = rest.split("/", 1)[0] if "/" in rest else ""
        try:
            return QualifiedName.parse(self.table.replace(NAME_PLACEHOLDER, validate_identifier(name, "table")))
        except IdentifierError as exc:
            raise RouteError(f"route {self.index} ({self.prefix!r}): key {key!r} gives no valid table: {exc}") from None


def match_route(routes: list[Route], key: str) -> Route | None:
    return next((route for route in routes if route.matches(key)), None)


def parse_routes(raw: Any, variable: str = "ROUTES") -> list[Route]:
    if not isinstance(raw, list):
        raise ConfigError(f"{variable} must be a JSON list of routes, got {type(raw).__name__}")
    return [parse_route(item, index, variable) for index, item in enumerate(raw)]


def parse_route(item: Any, index: int, variable: str = "ROUTES") -> Route:
    where = f"{variable}[{index}]"
    labels: dict[str, str] = {}

    def fail(field: str, message: str) -> ConfigError:
        return ConfigError(f"{where}.{labels.get(field, field)}: {message}")

    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a JSON object, got {type(item).__name__}")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    item = _merge_csv_options(item, where, labels)

    def text(field: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = item.get(field, default)
        if value is None:
            if required:
                raise fail(field, "is required")
            return None
        if not isinstance(value, str):
            raise fail(field, f"must be a string, got {type(value).__name__}")
        return value

    def choice(field: str, choices: tuple[str, ...], default: str) -> str:
        value = text(field, default)
        if value not in choices:
            raise fail(field, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def char(field: str, default: str | None) -> str | None:
        value = text(field, default)
        if value is not None and (len(value) != 1 or value in "\r\n"):
            raise fail(field, f"must be a single character other than a newline, got {value!r}")
        return value

    prefix = text("prefix", required=True)
    assert prefix is not None
    table = text("table", required=True)
    assert table is not None
    _check_table(table, fail)
    key_columns = item.get("key_columns", [])
    if not isinstance(key_columns, list) or not all(isinstance(c, str) for c in key_columns):
        raise fail("key_columns", "must be a list of column names")
    for column in key_columns:
        try:
            quotable_identifier(column, "column")
        except IdentifierError as exc:
            raise fail("key_columns", str(exc)) from None
    encoding = (text("encoding", "UTF8") or "UTF8").upper().replace("-", "")
    encoding = ENCODING_ALIASES.get(encoding, encoding)
    if encoding not in ENCODINGS:
        raise fail("encoding", f"unsupported encoding {item.get('encoding')!r}; use one of {', '.join(ENCODINGS)}")
    codecs.lookup(ENCODINGS[encoding])
    route = Route(
        index=index,
        prefix=prefix,
        table=table,
        suffix=text("suffix"),
        format=choice("format", FORMATS, "csv"),
        mode=choice("mode", MODES, "append"),
        key_columns=tuple(key_columns),
        on_error=choice("on_error", ON_ERROR, "reject_object"),
        compression=choice("compression", COMPRESSION, "auto"),
        delimiter=char("delimiter", ",") or ",",
        quote=char("quote", '"') or '"',
        escape=char("escape", None),
        null=text("null", "") or "",
        encoding=encoding,
    )
    if route.format == "csv" and route.delimiter == route.quote:
        raise fail("quote", "must differ from the delimiter")
    if route.mode == "append" and route.key_columns:
        raise fail("key_columns", "applies to mode upsert only")
    return route


def _merge_csv_options(item: Mapping[str, Any], where: str, labels: dict[str, str]) -> dict[str, Any]:
    """Accept the CSV dialect flat or nested under `csv` (the Terraform module's shape)."""
    fields = {k: v for k, v in item.items() if k != "csv"}
    nested = item.get("csv")
    if nested is None:
        return fields
    if not isinstance(nested, Mapping):
        raise ConfigError(f"{where}.csv: must be a JSON object, got {type(nested).__name__}")
    for name, value in nested.items():
        if name not in CSV_FIELDS:
            raise ConfigError(f"{where}.csv: unknown field {name!r}; known: {', '.join(CSV_FIELDS)}")
        if name in fields and fields[name] != value:
            raise ConfigError(f"{where}.csv.{name}: conflicts with {name} given at the top level")
        fields[name] = value
        labels[name] = f"csv.{name}"
    return fields


def _check_table(table: str, fail: Any) -> None:
    probe = table.replace(NAME_PLACEHOLDER, "x") if table.count(NAME_PLACEHOLDER) == 1 else table
    if "{" in probe or "}" in probe:
        raise fail("table", f"only one {NAME_PLACEHOLDER} placeholder is supported, got {table!r}")
    try:
        QualifiedName.parse(probe)
    except IdentifierError as exc:
        raise fail("table", str(exc)) from None
