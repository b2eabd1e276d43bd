"""Shared library of the pipeline Lambda functions: the skeleton every pipeline is built on.

Copied into every function zip by `make package`. Each module does one job (docs/architecture.md
shows which pipeline uses which):

- `config`: typed settings parsed once from environment variables;
- `secrets`: Secrets Manager JSON secrets cached with a TTL;
- `db`: lazily opened, health-checked, reused database connections (PostgreSQL, MySQL, SQL Server);
- `sandbox`: what a handler keeps between invocations (settings, clients, connections), with a reset;
- `events`: S3 / SNS / SQS / DynamoDB stream event parsing and partial batch responses;
- `errors`: the two kinds of failure, retryable and permanent, and the classifier handlers ask;
- `deadline`: stop long work cleanly before the Lambda timeout: deadline (and every wait), pacer,
  rate limit, statement timeouts;
- `backoff`: full-jitter exponential backoff and a retry loop for retryable errors, within the deadline;
- `locks`: advisory locks with one key scheme (PostgreSQL and MySQL/MariaDB), DDL under a lock;
- `checkpoint`: named progress rows with typed positions, written in the caller's transaction;
- `values`: typed position values as JSON;
- `ledger`: one row per S3 object version loaded, written with the data;
- `catalog`, `pgload`, `copytext`: PostgreSQL table shapes, COPY / staging / upsert, COPY text;
- `identifiers`: validation and driver-side quoting of schema, table, column and database names;
- `log`: structured JSON logging with the request id.
"""
