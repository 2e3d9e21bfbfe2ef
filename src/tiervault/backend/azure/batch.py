"""Blob Batch: deleting or re-tiering many blobs, ``BATCH_LIMIT`` sub-requests per request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob.aio import ContainerClient

from tiervault.backend.azure.blobs import TIERS
from tiervault.backend.azure.errors import is_gone
from tiervault.backend.base import Tier
from tiervault.errors import BackendError

__all__ = ["BATCH_LIMIT", "send_batches", "sub_error"]

_log = logging.getLogger("tiervault.backend.azure")

BATCH_LIMIT = 256  # Blob Batch: at most 256 sub-requests per batch


async def send_batches(
    container: ContainerClient,
    names: Sequence[str],
    blobs: Sequence[str],
    tier: Tier | None,
    translate: Callable[[BaseException, str], BackendError],
) -> None:
    """Delete (``tier`` None) or set the tier of ``blobs`` (the blob names of objects ``names``) in
    ``container``, 256 per Blob Batch request. Every batch is sent; then the first failed sub-request
    is raised (by ``translate``), the others are logged."""
    failures: list[BackendError] = []
    for i in range(0, len(blobs), BATCH_LIMIT):
        chunk_names = names[i : i + BATCH_LIMIT]
        chunk = blobs[i : i + BATCH_LIMIT]
        try:
            if tier is None:
                responses = await container.delete_blobs(*chunk, raise_on_any_failure=False)
            else:
                responses = await container.set_standard_blob_tier_blobs(
                    TIERS[tier], *chunk, raise_on_any_failure=False
                )
            answers = [r async for r in responses]
        except AzureError as exc:
            raise translate(exc, chunk_names[0]) from exc
        if len(answers) != len(chunk):
            raise BackendError(
                f"Blob Batch answered {len(answers)} of {len(chunk)} sub-requests (from {chunk_names[0]})"
            )
        for name, answer in zip(chunk_names, answers, strict=True):
            if answer.status_code in (200, 202):
                continue
            sub = sub_error(answer)
            if tier is None and is_gone(sub):
                continue  # deleting an absent object is fine (a missing container is not)
            err = translate(sub, name)
            _log.warning("batch %s failed for %s: %s", "delete" if tier is None else "set-tier", name, err)
            failures.append(err)
    if failures:
        raise failures[0]


def sub_error(answer: Any) -> HttpResponseError:
    """A failed Blob Batch sub-response as the SDK would raise it (for ``translate``)."""
    error = HttpResponseError(message=f"Blob Batch sub-request failed: {answer.reason}", response=answer)
    error.error_code = answer.headers.get("x-ms-error-code")  # type: ignore[attr-defined]
    return error
