"""A database's migrations in S3: list and validate the prefix, then download it.

The whole `<database>/` prefix is the source of truth (the state of the bucket, not the one
uploaded file), so a run triggered by any upload applies everything pending. Every key is
validated before the first byte is downloaded; downloads stream to disk and are hashed on the way.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schema_migrations.keys import MigrationKey, RequestRefused, database_name, is_folder_marker, parse_key

_CHUNK = 1024 * 1024
DOWNLOAD_WORKERS = 8  # small files: latency-bound, so a few requests in flight


@dataclass(frozen=True)
class MigrationFile:
    key: MigrationKey
    version_id: str | None
    size: int
    sha256: str
    path: Path


@dataclass(frozen=True)
class Download:
    files: list[MigrationFile]
    directory: Path
    seconds: float

    def sha256_by_id(self) -> dict[str, str]:
        return {f.key.migration_id: f.sha256 for f in self.files if not f.key.rollback}

    def file_for(self, migration_id: str) -> MigrationFile | None:
        for f in self.files:
            if f.key.migration_id == migration_id and not f.key.rollback:
                return f
        return None


def list_databases(s3: Any, bucket: str, allowed: Collection[str]) -> tuple[list[str], list[str]]:
    """Top-level prefixes of the bucket: (valid database names, refused prefixes)."""
    names: list[str] = []
    refused: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/"):
        for prefix in page.get("CommonPrefixes", []):
            name = prefix["Prefix"].rstrip("/")
            try:
                names.append(database_name(name, allowed))
            except RequestRefused:
                refused.append(name)
    return names, refused


def has_migrations(s3: Any, bucket: str, database: str) -> bool:
    response = s3.list_objects_v2(Bucket=bucket, Prefix=f"{database}/", MaxKeys=2)
    return any(not is_folder_marker(o["Key"]) for o in response.get("Contents", []))


def list_migration_keys(s3: Any, bucket: str, database: str, allowed: Collection[str]) -> list[MigrationKey]:
    """Every key under `<database>/`, validated; one odd key refuses the whole prefix."""
    keys: list[MigrationKey] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{database}/"):
        for item in page.get("Contents", []):
            if is_folder_marker(item["Key"]):
                continue
            keys.append(parse_key(item["Key"], allowed))
    return keys


def download(s3: Any, bucket: str, keys: list[MigrationKey], directory: Path) -> Download:
    """Stream the current version of each key into `directory` (which must be new and empty)."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=False)
    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        files = list(pool.map(lambda k: _download_one(s3, bucket, k, directory), keys))
    return Download(files=files, directory=directory, seconds=time.perf_counter() - started)


def _download_one(s3: Any, bucket: str, key: MigrationKey, directory: Path) -> MigrationFile:
    # The local name comes from the validated id only, never from the raw key.
    path = directory / key.filename
    digest = hashlib.sha256()
    size = 0
    response = s3.get_object(Bucket=bucket, Key=key.key)
    body = response["Body"]
    try:
        with open(path, "wb") as out:
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    finally:
        body.close()
    return MigrationFile(key=key, version_id=response.get("VersionId"), size=size, sha256=digest.hexdigest(), path=path)
