"""Inputs a reviewer found mishandled: PostgreSQL's `\\.` end-of-data line in CSV, thousands of bad
rows in one batch, corrupt gzip and CSV headers, constraint errors of the final upsert, and when a
busy or deferred message comes back."""

import pytest

from file_loader import loader
from file_loader.loader import EndOfDataLine, without_end_of_data


def chunked(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    "data", [b"\\.\n1\n", b"1\n\\.\n2\n", b"1\r\n\\.\r\n2\r\n", b"1\r\\.\r2\r", b"1\n\\.", b"a\nb\n\\.\n"]
)
def test_end_of_data_line_is_seen_wherever_the_chunks_split_it(data):
    for size in range(1, len(data) + 1):
        with pytest.raises(EndOfDataLine):
            list(without_end_of_data(chunked(data, size)))


@pytest.mark.parametrize("data", [b"1\n\\.x\n2\n", b"1\na\\.\n", b"1\n\\,\n", b"1\n.\\\n"])
def test_lines_merely_containing_backslash_dot_pass_untouched(data):
    # Cut right after `\.` a chunk may be taken for a marker (a detour by the careful path, no harm).
    assert b"".join(without_end_of_data([data])) == data


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1024 * 1024])
def test_csv_line_of_backslash_dot_is_data_and_the_rows_after_it_load(pipeline, monkeypatch, chunk):
    monkeypatch.setattr(loader, "S3_CHUNK", chunk)
    pipeline.execute("CREATE TABLE notes (v text)")
    pipeline.put_and_load("raw/notes/a.csv", "v\na\n\\.\nb\nc\n")
    assert pipeline.query("SELECT v FROM notes ORDER BY v") == [("\\.",), ("a",), ("b",), ("c",)]
    row = pipeline.ledger_row("raw/notes/a.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 4, 4, 0)


def test_backslash_dot_line_is_a_bad_row_where_more_columns_are_needed(pipeline):
    pipeline.put_and_load("quarantine/dot.csv", "id,customer\n1,a\n\\.\n2,b\n3,c\n")
    assert pipeline.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,), (3,)]
    assert [(line, raw) for line, raw, _ in pipeline.rejects("quarantine/dot.csv")] == [(3, "\\.\n")]
    row = pipeline.ledger_row("quarantine/dot.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 4, 3, 1)

    pipeline.put_and_load("orders/dot.csv", "id,customer\n11,a\n\\.\n12,b\n")
    row = pipeline.ledger_row("orders/dot.csv")
    assert (row["status"], row["error_line"], row["lines"], row["rows_rejected"]) == ("rejected", 3, 3, 3)
