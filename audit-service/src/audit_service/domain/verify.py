"""Walk the hash chain page by page and report the first record that does not hold."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from audit_service.domain.chain import (
    GENESIS_HASH,
    archive_statement,
    checkpoint_statement,
    record_hash,
    signature_valid,
)
from audit_service.store.checkpoints import archives, latest_checkpoint
from audit_service.store.records import first_seq, iter_records


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: uuid.UUID | None = None
    first_broken_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    checkpoint_seq: int | None = None


def _broken(checked: int, record: dict[str, Any] | None, reason: str) -> VerifyResult:
    return VerifyResult(
        ok=False,
        checked=checked,
        first_broken_id=record["id"] if record else None,
        first_broken_seq=record["seq"] if record else None,
        reason=reason,
    )


async def verify_chain(conn: AsyncConnection, *, key: bytes, page_size: int) -> VerifyResult:
    """Links, hashes and gaplessness of every record, then the tail against the last checkpoint.

    Records already pruned after archiving must be covered by signed archive manifests whose
    links join the genesis to the first record still here. Memory: one page.
    """
    checkpoint = await latest_checkpoint(conn)
    if checkpoint is not None and not signature_valid(
        key,
        checkpoint_statement(
            record_count=checkpoint["record_count"],
            head_seq=checkpoint["head_seq"],
            head_hash=checkpoint["head_hash"],
        ),
        checkpoint["signature"],
    ):
        return _broken(0, None, f"checkpoint {checkpoint['id']} has an invalid signature")

    manifests = await archives(conn)
    for manifest in manifests:
        if not signature_valid(key, archive_statement(manifest), manifest["signature"]):
            return _broken(0, None, f"archive {manifest['id']} has an invalid signature")
    archive_end = {m["to_seq"]: m["last_hash"] for m in manifests}

    expected_seq, expected_prev = 1, GENESIS_HASH
    start = await first_seq(conn)
    if start is not None and start > 1:
        # The range before the first record must be archived, manifest after manifest.
        for manifest in manifests:
            if manifest["from_seq"] != expected_seq or manifest["first_prev_hash"] != expected_prev:
                break
            expected_seq, expected_prev = manifest["to_seq"] + 1, manifest["last_hash"]
            if expected_seq >= start:
                break

    checked, head_seq = 0, 0
    checkpoint_hash_seen: str | None = None
    if checkpoint is not None and checkpoint["head_seq"] < expected_seq:
        # The checkpoint's head was pruned after archiving: the signed manifests vouch for it.
        archived_at_head = archive_end.get(checkpoint["head_seq"])
        checkpoint_hash_seen = archived_at_head or checkpoint["head_hash"]
        head_seq = expected_seq - 1
    async for page in iter_records(conn, page_size=page_size, after_seq=expected_seq - 1):
        for record in page:
            if record["seq"] != expected_seq:
                return _broken(
                    checked, record, f"records {expected_seq}..{record['seq'] - 1} are missing"
                )
            if record["prev_hash"] != expected_prev:
                return _broken(checked, record, "prev_hash does not link to the record before")
            if record_hash(record["prev_hash"], record) != record["hash"]:
                return _broken(checked, record, "hash does not match the record: it was altered")
            if record["seq"] in archive_end and archive_end[record["seq"]] != record["hash"]:
                return _broken(checked, record, "differs from its archived copy")
            if checkpoint is not None and record["seq"] == checkpoint["head_seq"]:
                checkpoint_hash_seen = record["hash"]
            checked += 1
            expected_seq += 1
            expected_prev = record["hash"]
            head_seq = record["seq"]

    result = VerifyResult(ok=True, checked=checked, head_seq=head_seq or None)
    if checkpoint is not None:
        result.checkpoint_seq = checkpoint["head_seq"]
        if head_seq < checkpoint["head_seq"]:
            result.ok = False
            result.reason = (
                f"truncated: checkpoint {checkpoint['id']} signed the chain up to seq "
                f"{checkpoint['head_seq']} but it ends at seq {head_seq}"
            )
            result.first_broken_seq = head_seq + 1
        elif checkpoint_hash_seen != checkpoint["head_hash"]:
            result.ok = False
            result.reason = f"record {checkpoint['head_seq']} differs from the signed checkpoint"
            result.first_broken_seq = checkpoint["head_seq"]
    return result
