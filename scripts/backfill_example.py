"""The worked example of the backfill (seed 004): orders that reached a final status are copied,
with their items and status history, into archive tables. docs/backfill.md walks through it; the
demo runs it on MariaDB, the tests on MariaDB and PostgreSQL, the benchmark at a million orders.

Source: `orders` (the driving table, key `id`), `order_items` and `order_status_history` (by
`order_id`). Targets: `order_archive`, `order_item_archive`, `order_status_archive`, each keyed by
the source row's id, which is what makes `INSERT IGNORE` / `ON CONFLICT DO NOTHING` skip rows a
replayed chunk already wrote. The status filter is inside the statements, never in the key range.
"""

from __future__ import annotations

from typing import Any

STATUSES = ("new", "paid", "packed", "uncollected", "cancelled", "dispensed")
FINAL_STATUSES = ("uncollected", "cancelled", "dispensed")
FINAL = "('uncollected', 'cancelled', 'dispensed')"
JOB_NAME = "order_archive"

_TABLES = {
    "orders": "id {id} NOT NULL PRIMARY KEY, customer_id bigint NOT NULL, status varchar(20) NOT NULL, "
    "total decimal(12,2) NOT NULL, created_at {ts} NOT NULL, updated_at {ts} NOT NULL",
    "order_items": "id {id} NOT NULL PRIMARY KEY, order_id {id} NOT NULL, sku varchar(32) NOT NULL, "
    "quantity int NOT NULL, unit_price decimal(12,2) NOT NULL",
    "order_status_history": "id {id} NOT NULL PRIMARY KEY, order_id {id} NOT NULL, status varchar(20) NOT NULL, "
    "changed_at {ts} NOT NULL",
    "order_archive": "order_id {id} NOT NULL PRIMARY KEY, customer_id bigint NOT NULL, "
    "final_status varchar(20) NOT NULL, total decimal(12,2) NOT NULL, created_at {ts} NOT NULL, "
    "finalized_at {ts} NOT NULL",
    "order_item_archive": "item_id {id} NOT NULL PRIMARY KEY, order_id {id} NOT NULL, sku varchar(32) NOT NULL, "
    "quantity int NOT NULL, unit_price decimal(12,2) NOT NULL",
    "order_status_archive": "history_id {id} NOT NULL PRIMARY KEY, order_id {id} NOT NULL, "
    "status varchar(20) NOT NULL, changed_at {ts} NOT NULL",
}
_INDEXES = {
    "order_items": "order_id",
    "order_status_history": "order_id",
    "order_item_archive": "order_id",
    "order_status_archive": "order_id",
}
SOURCE_TABLES = ("orders", "order_items", "order_status_history")
TARGET_TABLES = ("order_archive", "order_item_archive", "order_status_archive")


def schema_statements(engine: str) -> list[str]:
    """CREATE TABLE (and index) statements of the source and target tables."""
    mysql = engine == "mysql"
    types = {"id": "bigint unsigned" if mysql else "bigint", "ts": "datetime(6)" if mysql else "timestamp(6)"}
    out = []
    for table, columns in _TABLES.items():
        body = columns.format(**types)
        if mysql and table in _INDEXES:
            body += f", KEY {table}_{_INDEXES[table]} ({_INDEXES[table]})"
        out.append(f"CREATE TABLE {table} ({body})" + (" ENGINE=InnoDB" if mysql else ""))
        if not mysql and table in _INDEXES:
            out.append(f"CREATE INDEX {table}_{_INDEXES[table]} ON {table} ({_INDEXES[table]})")
    return out


def fill_statements(engine: str, orders: int, first: int = 1) -> list[str]:
    """Orders `first`..`first + orders - 1`: status `STATUSES[id % 6]` (half of them final), 1-3
    items and 1-2 history rows each (ids derived from the order's, so refills are deterministic)."""
    last = first + orders - 1
    if engine == "mysql":
        ids, small = f"seq_{first}_to_{last}", "seq_0_to_2"
        id_col, k_col = "seq", "k.seq"
        stamp = "TIMESTAMP '2024-01-01 00:00:00' + INTERVAL {x} SECOND"
        status = f"ELT(seq % 6 + 1, {', '.join(repr(s) for s in STATUSES)})"
        history_status = f"ELT((o.id + {k_col}) % 6 + 1, {', '.join(repr(s) for s in STATUSES)})"
    else:
        ids, small = f"generate_series({first}, {last}) AS g(seq)", "generate_series(0, 2) AS k(seq)"
        id_col, k_col = "seq", "k.seq"
        stamp = "TIMESTAMP '2024-01-01 00:00:00' + ({x}) * INTERVAL '1 second'"
        status = f"(ARRAY[{', '.join(repr(s) for s in STATUSES)}])[seq % 6 + 1]"
        history_status = f"(ARRAY[{', '.join(repr(s) for s in STATUSES)}])[(o.id + {k_col}) % 6 + 1]"
    small_table = small if engine != "mysql" else f"{small} AS k"
    return [
        "INSERT INTO orders (id, customer_id, status, total, created_at, updated_at) "
        f"SELECT {id_col}, {id_col} % 5000, {status}, ({id_col} % 10000) / 100.0 + 1, "
        f"{stamp.format(x=id_col)}, {stamp.format(x=f'{id_col} + 3600')} FROM {ids}",
        "INSERT INTO order_items (id, order_id, sku, quantity, unit_price) "
        f"SELECT o.id * 4 + {k_col}, o.id, CONCAT('SKU-', (o.id + {k_col}) % 997), 1 + {k_col}, "
        f"(o.id % 500) / 10.0 + 1 FROM orders o JOIN {small_table} ON {k_col} <= o.id % 3 "
        f"WHERE o.id BETWEEN {first} AND {last}",
        "INSERT INTO order_status_history (id, order_id, status, changed_at) "
        f"SELECT o.id * 4 + {k_col}, o.id, {history_status}, {stamp.format(x=f'o.id + {k_col} * 60')} "
        f"FROM orders o JOIN {small_table} ON {k_col} <= o.id % 2 WHERE o.id BETWEEN {first} AND {last}",
    ]


def _insert(engine: str, target: str, columns: str, select: str) -> str:
    if engine == "mysql":
        return f"INSERT IGNORE INTO {target} ({columns}) {select}"
    return f"INSERT INTO {target} ({columns}) {select} ON CONFLICT DO NOTHING"


RANGE = "o.id > :lo AND o.id <= :hi"


def statements(engine: str) -> list[str]:
    """The job's statements: each copies, for the orders of the range in a final status, one table."""
    final = f"o.status IN {FINAL}"
    return [
        _insert(
            engine,
            "order_archive",
            "order_id, customer_id, final_status, total, created_at, finalized_at",
            "SELECT o.id, o.customer_id, o.status, o.total, o.created_at, o.updated_at "
            f"FROM orders o WHERE {RANGE} AND {final}",
        ),
        _insert(
            engine,
            "order_item_archive",
            "item_id, order_id, sku, quantity, unit_price",
            "SELECT i.id, i.order_id, i.sku, i.quantity, i.unit_price "
            f"FROM orders o JOIN order_items i ON i.order_id = o.id WHERE {RANGE} AND {final}",
        ),
        _insert(
            engine,
            "order_status_archive",
            "history_id, order_id, status, changed_at",
            "SELECT h.id, h.order_id, h.status, h.changed_at "
            f"FROM orders o JOIN order_status_history h ON h.order_id = o.id WHERE {RANGE} AND {final}",
        ),
    ]


def verify_checks() -> list[dict[str, str]]:
    """Per range: the orders, items and history rows the job selects against what the archive holds."""
    final = f"o.status IN {FINAL}"
    target_range = "order_id > :lo AND order_id <= :hi"
    return [
        {
            "source": f"SELECT COUNT(*), COALESCE(SUM(o.total), 0) FROM orders o WHERE {RANGE} AND {final}",
            "target": f"SELECT COUNT(*), COALESCE(SUM(total), 0) FROM order_archive WHERE {target_range}",
        },
        {
            "source": "SELECT COUNT(*), COALESCE(SUM(i.quantity), 0) FROM orders o JOIN order_items i "
            f"ON i.order_id = o.id WHERE {RANGE} AND {final}",
            "target": f"SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM order_item_archive WHERE {target_range}",
        },
        {
            "source": "SELECT COUNT(*) FROM orders o JOIN order_status_history h ON h.order_id = o.id "
            f"WHERE {RANGE} AND {final}",
            "target": f"SELECT COUNT(*) FROM order_status_archive WHERE {target_range}",
        },
    ]


def job(engine: str, **overrides: Any) -> dict[str, Any]:
    """The job definition as `BACKFILL_JOBS` holds it (and as Terraform's `jobs` entry writes it)."""
    return {
        "name": JOB_NAME,
        "table": "orders",
        "key": ["id"],
        "statements": statements(engine),
        "idempotence": "insert_ignore",
        "chunk": {"initial_rows": 2000, "min_rows": 500, "max_rows": 50000, "target_seconds": 2},
        "verify": verify_checks(),
        **overrides,
    }


def archive_contents(cur: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every archive table's rows, in key order (to compare runs exactly)."""
    out = {}
    for table, key in (
        ("order_archive", "order_id"),
        ("order_item_archive", "item_id"),
        ("order_status_archive", "history_id"),
    ):
        cur.execute(f"SELECT * FROM {table} ORDER BY {key}")
        out[table] = [tuple(row) for row in cur.fetchall()]
    return out


def expected_contents(cur: Any) -> dict[str, list[tuple[Any, ...]]]:
    """What the archive must hold when the job ran over the current source in one go."""
    final = f"o.status IN {FINAL}"
    queries = {
        "order_archive": "SELECT o.id, o.customer_id, o.status, o.total, o.created_at, o.updated_at FROM orders o "
        f"WHERE {final} ORDER BY o.id",
        "order_item_archive": "SELECT i.id, i.order_id, i.sku, i.quantity, i.unit_price FROM orders o "
        f"JOIN order_items i ON i.order_id = o.id WHERE {final} ORDER BY i.id",
        "order_status_archive": "SELECT h.id, h.order_id, h.status, h.changed_at FROM orders o "
        f"JOIN order_status_history h ON h.order_id = o.id WHERE {final} ORDER BY h.id",
    }
    out = {}
    for table, query in queries.items():
        cur.execute(query)
        out[table] = [tuple(row) for row in cur.fetchall()]
    return out
