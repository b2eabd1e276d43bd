"""File loader: CSV and JSON-lines files uploaded to the landing bucket, loaded into PostgreSQL."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta

from scripts.demo.environment import Demo
from scripts.demo.report import PipelineReport, count_query, dead_letters, wait_idle

ORDER = 20


def sales_csv(first_id: int, rows: int, rng: random.Random) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sale_id", "sold_at", "store", "sku", "quantity", "amount"])
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for sale_id in range(first_id, first_id + rows):
        sold_at = start + timedelta(seconds=rng.randrange(86400 * 30))
        store = rng.choice(["Lisboa, Baixa", "Porto", 'Faro "Marina"', "Coimbra"])
        quantity = rng.randint(1, 9)
        writer.writerow(
            [
                sale_id,
                sold_at.isoformat(),
                store,
                f"SKU-{rng.randrange(500):04d}",
                quantity,
                f"{quantity * rng.uniform(2, 80):.2f}",
            ]
        )
    return buffer.getvalue().encode()


def customers_jsonl(ids: range, version: int, bad_line: bool) -> bytes:
    lines = [
        json.dumps(
            {
                "customer_id": customer_id,
                "name": f"Conceição {customer_id} v{version}",
                "email": f"c{customer_id}@example.com",
                "country": ["PT", "ES", "FR", "DE"][customer_id % 4],
                "updated_at": f"2025-03-0{version}T10:00:00Z",
            },
            ensure_ascii=False,
        )
        for customer_id in ids
    ]
    if bad_line:
        lines.insert(len(lines) // 2, '{"customer_id": "not a number", "name": ')
    return ("\n".join(lines) + "\n").encode()


def drive(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    environment = demo.function_env("file_loader")
    bucket = environment["SOURCE_BUCKET"]
    database = environment["DB_NAME"]
    rng = random.Random(7)
    files, rows = (3, 200) if demo.small else (8, 5000)
    s3 = demo.client("s3")
    sent_sales = 0
    for index in range(files):
        body = sales_csv(index * rows + 1, rows, rng)
        if index % 2:
            s3.put_object(Bucket=bucket, Key=f"sales/2025/03/day {index:02d}.csv", Body=body)
        else:
            key = f"sales/2025/03/store+{index:02d}.csv"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        sent_sales += rows
    customers = 50 if demo.small else 2000
    first = range(1, customers + 1)
    updated = range(customers // 2, customers + customers // 2 + 1)
    s3.put_object(Bucket=bucket, Key="customers/2025-03-01.jsonl", Body=customers_jsonl(first, 1, False))
    wait_idle(demo, "file loader (first customers file)")
    s3.put_object(
        Bucket=bucket,
        Key="customers/2025-03-02.jsonl.gz",
        Body=gzip.compress(customers_jsonl(updated, 2, True)),
    )
    wait_idle(demo, "file loader")
    loaded_sales = count_query(demo, database, "SELECT count(*) FROM staging.sales")
    loaded_customers = count_query(demo, database, "SELECT count(*) FROM staging.customers")
    updated_customers = count_query(demo, database, "SELECT count(*) FROM staging.customers WHERE name LIKE '%v2'")
    expected_customers = len(set(first) | set(updated))
    dlq = dead_letters(demo, "file_loader")
    return PipelineReport(
        pipeline="file loader",
        went_in=[
            f"{files} CSV files, {sent_sales} sales rows -> s3://{bucket}/sales/",
            f"2 JSON-lines files (one gzip, one malformed line), {len(first) + len(updated)} customer records "
            f"-> s3://{bucket}/customers/",
        ],
        came_out=[
            f"staging.sales: {loaded_sales} rows (append)",
            f"staging.customers: {loaded_customers} rows, {updated_customers} updated by the second file (upsert)",
            f"dead-letter queue: {dlq} messages",
        ],
        where=f"PostgreSQL database {database}",
        seconds=time.monotonic() - started,
        numbers={
            "sales_sent": sent_sales,
            "sales_loaded": loaded_sales,
            "customers_expected": expected_customers,
            "customers_loaded": loaded_customers,
            "customers_updated": updated_customers,
            "dead_letters": dlq,
        },
        ok=loaded_sales == sent_sales
        and loaded_customers == expected_customers
        and updated_customers == len(updated)
        and dlq == 0,
    )
