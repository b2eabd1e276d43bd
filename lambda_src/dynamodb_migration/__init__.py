"""DynamoDB migration: copy a table into a reshaped one, keep it in sync from the stream, verify.

Three functions share this package (one zip); `MIGRATION_FUNCTION` picks the entry point:

- `copy` (`copy.run_copy`): parallel, checkpointed Scan segments written through the guard;
- `sync` (`sync.sync_batch`): the source table's stream applied in order, once per record;
- `verify` (`verify.run_verify`): exact counts and a key-by-key comparison, with a repair mode.

`transform` is the one declarative transform all three apply; `guard` and `state` hold the
mechanism that keeps the copy from undoing the stream (docs/dynamodb_migration.md).
"""
