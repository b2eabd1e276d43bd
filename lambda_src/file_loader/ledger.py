"""The file loader's ledger: `pipeline_common.ledger.Ledger` under the names `file_loads` and
`file_rejects` in `STATE_SCHEMA`, the names every release has used, so a deployed ledger is read
as it stands.

Releases before the shared lock scheme (`pipeline_common.locks`) locked an object version with a
blake2b bigint of their own. That key is taken too, so during a rolling deploy an old sandbox
finishing an invocation and a new one never load the same version at once. Drop it once no
release older than the shared scheme can run.
"""

from __future__ import annotations

import hashlib

from pipeline_common.ledger import Ledger, ObjectId


def legacy_lock_key(obj: ObjectId) -> int:
    """The advisory lock key earlier releases took for `obj`."""
    digest = hashlib.blake2b(f"{obj.bucket}\0{obj.key}\0{obj.version}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def file_ledger(schema: str) -> Ledger:
    return Ledger(schema, "file_loads", "file_rejects", legacy_lock=legacy_lock_key)
