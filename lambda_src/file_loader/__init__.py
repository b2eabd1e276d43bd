"""File loader: S3 objects (CSV, JSON lines, optionally gzip) into PostgreSQL with COPY, exactly
once per object version. `handler.handler` is the Lambda entry point; routes are described in
`routes`."""
