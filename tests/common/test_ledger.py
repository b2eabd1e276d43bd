"""The ledger with its table names as parameters: a second pipeline keeps its own with the same code."""

from __future__ import annotations

import psycopg2

from pipeline_common.ledger import Ledger, ObjectId, Outcome

OBJ = ObjectId("landing", "dms/sales/orders/LOAD00000001.csv", "v1")


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
            assert (cdc.status(cur, OBJ), files.status(cur, OBJ)) == ("loaded", None)
            # A terminal row is never changed by a later attempt.
            cdc.record(cur, OBJ, Outcome("failed", error="late duplicate"))
            assert cdc.status(cur, OBJ) == "loaded"
        conn.commit()

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
