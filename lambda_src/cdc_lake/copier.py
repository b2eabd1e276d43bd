"""Server-side copies from the staging bucket into the lake, and the verified delete after them.

Below the multipart threshold the copy is one CopyObject; at or above it, boto3's managed copy
(s3transfer's TransferManager): a multipart upload of UploadPartCopy ranges, which is the only
way past CopyObject's 5 GB limit. The object's size comes from the notification, so the manager
never asks S3 for it: an ordinary file costs exactly one S3 call. The source is pinned to the
event's version id when there is one (versioned buckets), else to its ETag (CopySourceIfMatch), so
a newer object written under the same key meanwhile is never copied in the event's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from s3transfer.subscribers import BaseSubscriber

from cdc_lake.reading import ObjectVersion, SourceGone, is_gone
from pipeline_common.errors import RetryableError

# Parts copied at once within one large copy: UploadPartCopy is server-side, so more parts in
# flight shorten a large copy without moving bytes through the function.
MAX_PART_CONCURRENCY = 8


class CopyMismatch(RetryableError):
    """The lake object is not the size of the staging object it was copied from; the staging
    object is kept and the message comes back."""


@dataclass(frozen=True)
class Copied:
    multipart: bool


class Copier:
    """One per sandbox: the S3 client and a transfer manager whose thresholds come from the settings."""

    def __init__(self, s3: Any, multipart_threshold: int, multipart_chunk_size: int) -> None:
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        self.s3 = s3
        self.multipart_threshold = multipart_threshold
        config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunk_size,
            max_concurrency=MAX_PART_CONCURRENCY,
        )
        self._manager = create_transfer_manager(s3, config)

    def copy(self, source: ObjectVersion, size: int, bucket: str, key: str) -> Copied:
        """Copy `source` (of `size` bytes) to `bucket`/`key`; raises SourceGone when the version is
        no longer there."""
        copy_source: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        extra: dict[str, str] = {}
        if source.version_id:
            copy_source["VersionId"] = source.version_id
        elif source.etag:
            extra["CopySourceIfMatch"] = f'"{source.etag}"'
        try:
            if size < self.multipart_threshold:
                # What the manager would send, without its threads and bookkeeping (a millisecond
                # or more per file, which many small files feel).
                self.s3.copy_object(CopySource=copy_source, Bucket=bucket, Key=key, **extra)
            else:
                known = _KnownObject(size, f'"{source.etag}"' if source.etag else None)
                self._manager.copy(
                    copy_source, bucket, key, extra_args=extra, subscribers=[known], source_client=self.s3
                ).result()
        except ClientError as exc:
            if is_gone(exc):
                raise SourceGone(f"s3://{source.bucket}/{source.key} is gone or changed: {exc}") from None
            raise
        return Copied(multipart=size >= self.multipart_threshold)

    def delete_source(self, source: ObjectVersion, size: int, bucket: str, key: str) -> str | None:
        """Delete the staging object once the lake holds a copy of its size; returns the version
        deleted (None when the source is already gone). A multipart copy's ETag is not the
        source's, and neither is any SSE-KMS object's, so the check is the size, read back from
        the lake object itself.

        Without a version id the source's current version is deleted only if it still has the
        event's ETag (a HeadObject first): in a versioned bucket a delete without a version id
        would hide a newer version behind a delete marker."""
        lake = self.s3.head_object(Bucket=bucket, Key=key)
        if lake["ContentLength"] != size:
            raise CopyMismatch(
                f"s3://{bucket}/{key} has {lake['ContentLength']} bytes, s3://{source.bucket}/{source.key} "
                f"{size}: the staging object is kept"
            )
        version_id = source.version_id
        try:
            if version_id is None:
                head = self.s3.head_object(**source.get_arguments())
                version_id = head.get("VersionId")
            arguments: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
            if version_id:
                arguments["VersionId"] = version_id
            self.s3.delete_object(**arguments)
        except ClientError as exc:
            if is_gone(exc):
                return None
            raise
        return version_id


class _KnownObject(BaseSubscriber):  # type: ignore[misc]
    """Hands the transfer manager the size and ETag from the notification, which spares the
    HeadObject it would make for them (the ETag also pins every part of a multipart copy)."""

    def __init__(self, size: int, etag: str | None) -> None:
        self.size = size
        self.etag = etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        if self.etag is not None:
            future.meta.provide_object_etag(self.etag)
