"""The ledger with its table names as parameters: a second pipeline keeps its own with the same code."""

from __future__ import annotations

import psycopg2

from pipeline_common.ledger import Claim, Ledger, ObjectId, Outcome

OBJ = ObjectId("landing", "dms/sales/orders/LOAD00000001.csv", "v1")


class Budget:
    def __init__(self, usable_ms: float) -> None:
        self.ms = usable_ms

    def usable_ms(self) -> float:
        return self.ms


def test_two_ledgers_in_one_schema_keep_their_own_rows_and_locks(pg_server, pg_database):
    files = Ledger("pipeline_state", "file_loads", "file_rejects")
    cdc = Ledger("pipeline_state", "cdc_applied_files", "cdc_rejects")
    conn, other = (psycopg2.connect(pg_server.dsn(pg_database)) for _ in range(2))
    try:
        for ledger in (files, cdc):
            ledger.ensure(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'pipeline_state' ORDER BY 1")
            assert [r[0] for r in cur.fetchall()] == ["cdc_applied_files", "cdc_rejects", "file_loads", "file_rejects"]
            cdc.record(cur, OBJ, Outcome("loaded", target_table="sales.orders", rows_loaded=3))
            # A terminal row is never changed by a later attempt.
            cdc.record(cur, OBJ, Outcome("failed", error="late duplicate"))
        conn.commit()

        with conn.cursor() as cur, other.cursor() as other_cur:
            claim = cdc.claim(cur, OBJ, Budget(1234.5))
            assert (claim.locked, claim.status, claim.done) == (True, "loaded", True)
            cur.execute("SHOW statement_timeout")  # bounded for the rest of the transaction
            assert cur.fetchone()[0] == "1234ms"
            assert cdc.claim(other_cur, OBJ, Budget(1000)) == Claim(locked=False)  # busy
            assert files.claim(other_cur, OBJ, Budget(1000)) == Claim(locked=True, status=None)  # its own lock and row
        conn.rollback()
        other.rollback()
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")  # the limit ended with the transaction
            assert cur.fetchone()[0] == "0"
        conn.rollback()

        assert files.lock_key(OBJ).pg != cdc.lock_key(OBJ).pg
        with conn.cursor() as cur, other.cursor() as other_cur:
            assert cdc.try_lock(cur, OBJ)
            assert not cdc.try_lock(other_cur, OBJ)
            assert files.try_lock(other_cur, OBJ)  # another ledger's object: not the same lock
        conn.rollback()  # transaction locks end with the transaction
        with other.cursor() as other_cur:
            other.rollback()
            assert cdc.try_lock(other_cur, OBJ)
        other.rollback()
    finally:
        conn.close()
        other.close()


def test_details_are_kept_and_a_ledger_without_the_column_still_records(pg_server, pg_database):
    """A pipeline's own facts about an object go to `details`; a ledger table created before the
    column existed (the file loader's, deployed earlier) keeps working as long as none are passed."""
    conn = psycopg2.connect(pg_server.dsn(pg_database))
    try:
        copies = Ledger("pipeline_state", "cdc_lake_copies", "cdc_lake_rejects")
        copies.ensure(conn)
        with conn.cursor() as cur:
            details = {"target_key": "lake/dms/orders/year=2026/LOAD00000001.csv", "inserts": 3, "restart": False}
            copies.record(cur, OBJ, Outcome("loaded", lines=3, details=details))
            cur.execute("SELECT details FROM pipeline_state.cdc_lake_copies")
            assert cur.fetchall() == [(details,)]

            cur.execute("CREATE TABLE pipeline_state.old_loads (LIKE pipeline_state.cdc_lake_copies INCLUDING ALL)")
            cur.execute("ALTER TABLE pipeline_state.old_loads DROP COLUMN details")
            old = Ledger("pipeline_state", "old_loads", "cdc_lake_rejects")
            old.record(cur, OBJ, Outcome("failed", error="first try"))
            old.record(cur, OBJ, Outcome("loaded", rows_loaded=3))
            cur.execute("SELECT status, attempts, rows_loaded FROM pipeline_state.old_loads")
            assert cur.fetchall() == [("loaded", 2, 3)]
        conn.rollback()
    finally:
        conn.close()
