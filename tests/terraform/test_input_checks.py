"""Wrong settings fail the plan early with a message that says what to fix: variable validations
of the root and the pipeline modules, and the root's preconditions on the packages and settings."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.terraform import tfkit

ROUTE = 'prefix = "sales/", table = "staging.sales", format = "csv"'
SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:pipelines/dev/loader-Ab12Cd"
KEY = "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
EXISTING_DATABASE = [
    "create_database=false",
    "db_host=shared-pg.c0ffee.eu-west-1.rds.amazonaws.com",
    "db_master_user_secret_arn=arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-0a1b2c3d-Ab12Cd",
    "db_security_group_id=sg-0a1b2c3d4e5f60799",
]
SYNC = (
    'source={host="h", name="d", cidr_blocks=["10.0.0.0/24"]}, '
    'tables=[{source="dbo.a", target="s.a", primary_key=["id"], cursor={type="rowversion", column="rv"}}]'
)

# name: (extra -var arguments on top of environments/dev.tfvars, expected message or messages)
CASES = {
    "route_table_not_qualified": (
        ['file_loader={routes=[{prefix="a/", table="sales", format="csv"}]}'],
        'Every route table must be "schema.table"',
    ),
    "route_format_unknown": (
        ['file_loader={routes=[{prefix="a/", table="s.t", format="parquet"}]}'],
        "Every route format must be csv or jsonl.",
    ),
    "key_columns_on_append": (
        ['file_loader={routes=[{prefix="a/", table="s.t", format="csv", key_columns=["id"]}]}'],
        'key_columns applies to mode = "upsert" only',
    ),
    "csv_delimiter_two_characters": (
        ['file_loader={routes=[{prefix="a/", table="s.t", format="csv", csv={delimiter=";;"}}]}'],
        "csv.delimiter, csv.quote and csv.escape must each be a single character",
    ),
    "routes_shadowing_each_other": (
        [f"file_loader={{routes=[{{{ROUTE}}}, {{{ROUTE}}}]}}"],
        "Two routes have the same prefix and suffix",
    ),
    "sync_cursor_type_unknown": (
        [
            'table_sync={source={host="h", name="d", cidr_blocks=["10.0.0.0/24"]}, tables=[{source="dbo.a", '
            'target="s.a", primary_key=["id"], cursor={type="identity", column="id"}}]}'
        ],
        "cursor.type must be rowversion or timestamp",
    ),
    "sync_source_open_to_the_world": (
        [
            'table_sync={source={host="h", name="d", cidr_blocks=["0.0.0.0/0"]}, tables=[{source="dbo.a", '
            'target="s.a", primary_key=["id"], cursor={type="rowversion", column="rv"}}]}'
        ],
        "source_database.cidr_blocks must list the source host's IPv4 CIDR blocks (not 0.0.0.0/0)",
    ),
    "migrations_database_not_an_identifier": (
        ['schema_migrations={allowed_databases=["Bad-Name"]}'],
        "allowed_databases must be lower-case database identifiers",
    ),
    "pipeline_secret_not_an_arn": (
        [f'file_loader={{routes=[{{{ROUTE}}}], database_secret_arn="pipelines/dev/file-loader"}}'],
        "file_loader.database_secret_arn must be null (the master secret) or the complete ARN of an existing "
        "Secrets Manager secret",
    ),
    "pipeline_secret_arn_without_its_suffix": (
        [
            f"table_sync={{{SYNC}, "
            'database_secret_arn="arn:aws:secretsmanager:eu-west-1:111122223333:secret:pipelines/dev/table_sync"}'
        ],
        "table_sync.database_secret_arn must be null (the master secret) or the complete ARN",
    ),
    "pipeline_secret_key_is_an_alias": (
        [
            f'table_sync={{{SYNC}, database_secret_arn="{SECRET}", '
            'database_secret_kms_key_arn="arn:aws:kms:eu-west-1:111122223333:alias/db"}'
        ],
        "table_sync.database_secret_kms_key_arn must be null or a KMS key ARN",
    ),
    "pipeline_secret_key_without_secret": (
        [f'file_loader={{routes=[{{{ROUTE}}}], database_secret_kms_key_arn="{KEY}"}}'],
        "is only used together with file_loader.database_secret_arn",
    ),
    "pipelines_share_a_secret_with_two_keys": (
        [
            f'file_loader={{routes=[{{{ROUTE}}}], database_secret_arn="{SECRET}", '
            f'database_secret_kms_key_arn="{KEY}"}}',
            f'table_sync={{{SYNC}, database_secret_arn="{SECRET}"}}',
        ],
        f"file_loader and table_sync share the database secret {SECRET} but name different",
    ),
    "endpoint_account_id_malformed": (
        ['endpoint_allowed_account_ids=["11112222333"]'],
        "endpoint_allowed_account_ids must be 12-digit AWS account ids",
    ),
    "existing_database_not_described": (
        ["create_database=false", "db_host=shared-pg.c0ffee.eu-west-1.rds.amazonaws.com"],
        "create_database is false, so the pipelines use an existing PostgreSQL database: set "
        "db_master_user_secret_arn, db_security_group_id (see",
    ),
    "existing_database_behind_a_created_proxy": (
        [*EXISTING_DATABASE, "create_db_proxy=true"],
        "create_db_proxy creates an RDS Proxy for the database this module creates; with create_database = false",
    ),
    "adopted_vpc_not_described": (
        ["create_vpc=false", "vpc_id=vpc-0a1b2c3d4e5f60718"],
        "create_vpc is false: set vpc_id, vpc_cidr_block and at least 2 private_subnet_ids",
    ),
    # Root variable validations all report in one plan: one run checks them together.
    "malformed_existing_database_and_iam_inputs": (
        [
            "db_master_user_secret_arn=arn:aws:secretsmanager:eu-west-1:111122223333:secret:pg",
            "db_security_group_id=database-sg",
            "db_master_user_secret_kms_key_arn=arn:aws:kms:eu-west-1:111122223333:alias/rds",
            "iam_role_path=pipelines",
            "iam_role_permissions_boundary=arn:aws:iam::111122223333:role/boundary",
        ],
        (
            "db_master_user_secret_arn must be the complete ARN of a Secrets Manager secret",
            "db_security_group_id must be a security group id (sg-...)",
            "db_master_user_secret_kms_key_arn must be a KMS key ARN",
            'iam_role_path must start and end with "/"',
            "iam_role_permissions_boundary must be an IAM policy ARN",
        ),
    ),
    # The CDC lake's table mappings: every wrong entry is named in the one plan.
    "cdc_lake_table_mappings": (
        [
            'cdc_lake={source={engine="oracle", database_name="sales"}, tables=['
            '{schema="dbo", table="order lines"}, {schema="dbo", table="a", action="skip"}, '
            '{schema="dbo", table="tmp%", apply_to="replica.tmp"}, {schema="dbo", table="b", apply_to="b"}, '
            '{schema="dbo", table="c", filters=[{column="id", operator="between", value="1"}]}, '
            '{schema="dbo", table="c"}]}'
        ],
        (
            "cdc_lake.tables: every schema and table must be a name of letters, digits, _ and $",
            "cdc_lake.tables: action must be include or exclude.",
            "cdc_lake.tables: apply_to and columns describe one named table",
            'cdc_lake.tables: apply_to must be "schema.table" in PostgreSQL',
            "cdc_lake.tables: a filter operator must be eq, noteq, gte or ste with a value, between or notbetween "
            "with start and end",
            "cdc_lake.tables: a schema and table appear twice",
            "cdc_lake.source.engine must be sqlserver, mysql, mariadb or postgres",
        ),
    ),
    "cdc_lake_excludes_only": (
        ['cdc_lake={source={engine="sqlserver", database_name="sales"}, tables=[{schema="dbo", action="exclude"}]}'],
        'cdc_lake.tables must include at least one table (an entry with action = "include")',
    ),
    "cdc_lake_without_source_or_tables": (
        ["cdc_lake={}"],
        "enable_cdc_lake is true: set cdc_lake.source (the database DMS replicates) and at least one entry",
    ),
    "cdc_lake_parquet_applied": (
        [
            'cdc_lake={source={engine="sqlserver", database_name="sales", cidr_blocks=["10.50.0.0/24"]}, '
            'data_format="parquet", tables=[{schema="dbo", table="a", apply_to="replica.a"}]}'
        ],
        'partition_by = "commit" and apply_to read the rows of CSV files: they need data_format = "csv"',
    ),
    "cdc_lake_source_open_to_the_world": (
        [
            'cdc_lake={source={engine="sqlserver", database_name="sales", cidr_blocks=["0.0.0.0/0"]}, '
            'tables=[{schema="dbo"}]}'
        ],
        "source_database needs cidr_blocks (IPv4 CIDR blocks of the source host, not 0.0.0.0/0)",
    ),
    "runtime_differs_from_the_packages": (
        ["lambda_runtime=python3.13"],
        "run `make package RUNTIME=python3.13`",
    ),
    "architecture_differs_from_the_packages": (
        ["lambda_architecture=arm64"],
        "run `make package ARCH=arm64`",
    ),
}


@pytest.fixture(scope="module")
def refused(plan_root: Path, tf_env: dict[str, str], build_dir: Path) -> dict[str, tfkit.Result]:
    def plan(case: str) -> tfkit.Result:
        extra, _ = CASES[case]
        return tfkit.terraform(plan_root, *tfkit.plan_args(build_dir, ["environments/dev.tfvars"], extra), env=tf_env)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(CASES, pool.map(plan, CASES), strict=True))


@pytest.mark.parametrize("case", CASES)
def test_plan_is_refused_with_a_clear_message(case: str, refused: dict[str, tfkit.Result]) -> None:
    result = refused[case]
    output = re.sub(r"\s+", " ", result.stderr + result.stdout).replace("│", "")
    output = re.sub(r"\s+", " ", output)
    assert result.returncode == 1, f"{case}: the plan was not refused\n{result.stdout[-3000:]}"
    expected = CASES[case][1]
    for message in (expected,) if isinstance(expected, str) else expected:
        assert message in output, f"{case}: expected {message!r} in\n{result.stderr[-3000:]}"
