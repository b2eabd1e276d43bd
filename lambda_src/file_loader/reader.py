"""Reading one S3 object version as a stream of decompressed chunks, as often as a path needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from file_loader.formats import decompressed
from file_loader.routes import Route
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PermanentError
from pipeline_common.ledger import ObjectId

S3_CHUNK = 1024 * 1024


class Superseded(PermanentError):
    """The key now holds different content than the event announced (unversioned bucket): the
    event's content is gone, and the newer content brings its own event."""


@dataclass
class ByteCounter:
    bytes: int = 0


class ObjectReader:
    """Opens the object version as a stream of decompressed chunks; every chunk asks the deadline
    (keeping `reserve_after_copy_ms` back for what follows the copy, such as an upsert).
    `content_bytes` counts the decompressed bytes of the latest read, for the loader's check that
    an object with content yielded records."""

    def __init__(
        self,
        s3: Any,
        obj: ObjectId,
        route: Route,
        deadline: Deadline,
        counter: ByteCounter,
        *,
        version_id: str | None,
        etag: str | None,
    ) -> None:
        self.s3 = s3
        self.obj = obj
        self.route = route
        self.deadline = deadline
        self.counter = counter
        self.version_id = version_id
        self.etag = etag
        self.reserve_after_copy_ms = 0.0
        self.content_bytes = 0

    def chunks(self) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.obj.bucket, "Key": self.obj.key}
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        elif self.etag:
            # Without versioning, only the content the event announced may be loaded under its ETag.
            kwargs["IfMatch"] = f'"{self.etag}"'
        try:
            response = self.s3.get_object(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise Superseded(f"s3://{self.obj.bucket}/{self.obj.key} changed since ETag {self.etag}") from None
            raise
        raw = self._counted(response["Body"])
        self.content_bytes = 0
        return self._content(decompressed(raw, self.route.compression, response.get("ContentEncoding")))

    def _content(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.content_bytes += len(chunk)
            yield chunk

    def _counted(self, body: Any) -> Iterator[bytes]:
        try:
            for chunk in body.iter_chunks(S3_CHUNK):
                self.counter.bytes += len(chunk)
                self.deadline.check(self.reserve_after_copy_ms, "streaming the object")
                yield chunk
        finally:
            body.close()
