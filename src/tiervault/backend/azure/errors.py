"""Azure's exceptions to tiervault's error tree, once, here (``translate``), and the error codes that
decide it."""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from tiervault.errors import (
    BackendError,
    LeaseHeldError,
    ObjectArchivedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientBackendError,
)

__all__ = ["code_of", "is_gone", "status_of", "translate"]


def status_of(exc: HttpResponseError) -> int:
    return int(exc.status_code or 0)


def code_of(exc: BaseException) -> str:
    """Azure's error code (``BlobNotFound``...): the SDK's attribute (a str enum), else the header."""
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)
    if not code and isinstance(exc, HttpResponseError) and exc.response is not None:
        code = getattr(exc.response, "headers", {}).get("x-ms-error-code")
    return str(code or "")


#: a lease is held by someone else, or ours is gone (released, broken, lapsed and taken)
_LEASE_CODES = frozenset(
    {
        "LeaseAlreadyPresent",
        "LeaseIdMismatchWithLeaseOperation",
        "LeaseIdMismatchWithBlobOperation",
        "LeaseNotPresentWithLeaseOperation",
        "LeaseIsBrokenAndCannotBeRenewed",
        "LeaseIsBreakingAndCannotBeAcquired",
        "LeaseIsBreakingAndCannotBeChanged",
        "LeaseLost",
        "LeaseIdMissing",
    }
)
_ARCHIVED_CODES = frozenset({"BlobArchived", "BlobBeingRehydrated"})


def translate(exc: BaseException, name: str, *, container: str | None = None) -> BackendError:
    """Azure's exceptions become tiervault's, once, here (always used with ``raise ... from exc``).

    ``name`` is the object (or prefix) the operation was about; ``container`` names the container in
    the message when Azure says it does not exist.
    """
    code = code_of(exc)
    status = status_of(exc) if isinstance(exc, HttpResponseError) else 0
    answer = f"{status} {code}".strip() if status else (code or type(exc).__name__)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return PermissionDeniedError(
            f"{name}: access denied by Azure Storage ({answer}): check the key, SAS (expiry, "
            "permissions) or the identity's role on the account"
        )
    if code == "ContainerNotFound":
        which = f"container {container!r}" if container else "the container"
        return ObjectNotFoundError(f"{name}: {which} does not exist (ContainerNotFound)")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return ObjectNotFoundError(f"{name}: no such object ({answer})")
    if code in _ARCHIVED_CODES:
        return ObjectArchivedError(f"{name} is in the Archive tier ({code}): rehydrate it first")
    if code in _LEASE_CODES:
        return LeaseHeldError(f"{name}: leased by another holder, or our lease is gone ({code})")
    if isinstance(exc, IncompleteReadError):  # a download cut short, after the SDK's own retries
        return TransientBackendError(f"{name}: download from Azure Storage cut short: {exc}", retried=True)
    if isinstance(exc, HttpResponseError):
        if status == 429:
            return TransientBackendError(f"{name}: throttled by Azure Storage ({answer})", retried=False)
        if status == 408 or (status >= 500 and status not in (501, 505)):
            return TransientBackendError(f"{name}: Azure Storage answered {answer}", retried=True)
        return BackendError(f"{name}: Azure Storage answered {answer}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientBackendError(f"{name}: cannot reach Azure Storage: {exc}", retried=True)
    return BackendError(f"{name}: {type(exc).__name__}: {exc}")


def is_gone(exc: AzureError) -> bool:
    """A 404 about the object itself (``BlobNotFound``), not about its container."""
    status = status_of(exc) if isinstance(exc, HttpResponseError) else 0
    return status == 404 and code_of(exc) != "ContainerNotFound"
