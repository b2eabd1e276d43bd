"""The fixtures themselves: servers really run, databases are isolated, failures are loud."""

import pyodbc
import pytest

from scripts.localdb import ServerStartError, postgres_server


def test_each_test_gets_a_fresh_postgres_database(pg_conn, pg_database):
    with pg_conn.cursor() as cur:
        cur.execute("SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (pg_database, 0)
        cur.execute("SHOW server_version_num")
        assert int(cur.fetchone()[0]) >= 150000


def test_mariadb_is_utf8mb4(mariadb_conn):
    with mariadb_conn.cursor() as cur:
        cur.execute("SELECT @@character_set_database, '😀'")
        assert cur.fetchone() == ("utf8mb4", "😀")


def test_odbc_connection_strings_stream_and_work(odbc_postgres, odbc_mariadb):
    assert "UseDeclareFetch=1" in odbc_postgres
    for connection_string in (odbc_postgres, odbc_mariadb):
        conn = pyodbc.connect(connection_string)
        assert conn.cursor().execute("SELECT 40 + 2").fetchone()[0] == 42
        conn.close()


def test_a_server_that_cannot_start_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))  # no binaries there
    with pytest.raises((ServerStartError, FileNotFoundError)), postgres_server():
        pass
