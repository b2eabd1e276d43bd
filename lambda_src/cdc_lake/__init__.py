"""CDC data lake: DMS files from the staging bucket partitioned into the lake, optionally applied
to PostgreSQL (docs/cdc_lake.md)."""
