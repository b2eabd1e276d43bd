"""Shared library of the pipeline Lambda functions.

Copied into every function zip by `make package`. Each module does one job:

- `config`: typed settings parsed once from environment variables;
- `secrets`: Secrets Manager JSON secrets cached with a TTL;
- `db`: lazily opened, health-checked, reused database connections (PostgreSQL, MySQL, SQL Server);
- `events`: S3 / SNS / SQS / DynamoDB stream event parsing and partial batch responses;
- `deadline`: stop long work cleanly before the Lambda timeout;
- `identifiers`: validation and driver-side quoting of schema, table, column and database names;
- `log`: structured JSON logging with the request id.
"""
