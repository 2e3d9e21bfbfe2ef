"""A fault-injecting reverse proxy in front of Azurite, for tests of retries and lost responses.

    with FaultProxy(azurite.port, seed=1, fail_rate=0.05, drop_rate=0.03) as proxy:
        async with tiervault.init(proxy.address(container), ...) as vault:
            ...
        assert proxy.counts["failed"] > 0

It runs an aiohttp server on a free ``127.0.0.1`` port, in a thread of its own with its own event
loop (so the code under test keeps the main loop to itself, and a blocked main loop cannot stall
the proxy). Every request is forwarded to the upstream (always on ``127.0.0.1``: nothing here can
reach another host) with its method, path, query, headers and body, and the answer comes back with
its status, headers and body. Hop-by-hop headers are not forwarded; ``Content-Length`` is kept, so
``HEAD`` answers keep the size of the blob they describe.

Faults, decided per request in this order (the first that applies wins):

1. ``storm_until`` (a ``time.monotonic()`` deadline, or ``storm(seconds)`` / ``storm_when(...)``):
   until then every request is answered ``503 ServerBusy`` without being forwarded;
2. ``status_override(info) -> int | None``: answer that status (with an Azure XML error body)
   without forwarding; ``action_override(info) -> "drop" | "lost" | None`` does the same for the
   two connection faults below;
3. one draw of a seeded ``random.Random`` for the requests ``fault_filter`` accepts (all by
   default): ``fail_rate`` → ``503 ServerBusy``; ``drop_rate`` → the connection is closed without an
   answer, before forwarding (the request never happened); ``lost_response_rate`` → the request IS
   forwarded, then the connection is closed instead of answering (it happened, the client never
   learns so: the lost-response hazard of conditional creates).

``hold_when(match, after=n)`` parks matching requests (after the first ``n``) before forwarding,
until ``release()``: a test can then act (persist, kill the upstream) while requests are in flight.
If the upstream cannot be reached the client's connection is closed, as a network failure would.

``counts`` (a ``Counter``) has ``seen``, ``forwarded``, ``failed``, ``dropped``, ``lost``,
``storm``, ``override``, ``upstream_error``, ``held``; ``log`` has one ``Record`` per request.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Literal, Self
from urllib.parse import unquote

import aiohttp
from aiohttp import web

ACCOUNT_NAME = "devstoreaccount1"

#: Headers that describe one connection, never forwarded (RFC 9110 7.6.1), plus those the other
#: side recomputes. ``Content-Length`` is deliberately not here (see the module docstring).
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
    )
)

#: Azure's error codes for the statuses the proxy makes up.
ERROR_CODES = {
    400: "InvalidInput",
    403: "AuthenticationFailed",
    404: "ResourceNotFound",
    408: "OperationTimedOut",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServerBusy",
    504: "GatewayTimeout",
}

Action = Literal["drop", "lost"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the fault hooks see of a request."""

    method: str
    path: str  # URL-decoded, e.g. /devstoreaccount1/container/data/ab/ab12...
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names

    @property
    def container(self) -> str:
        parts = self.path.lstrip("/").split("/", 2)
        return parts[1] if len(parts) > 1 else ""

    @property
    def blob(self) -> str:
        """The blob name (``""`` for account or container requests)."""
        parts = self.path.lstrip("/").split("/", 2)
        return parts[2] if len(parts) > 2 else ""

    @property
    def is_blob_upload(self) -> bool:
        """A Put Blob (not a block, lease, tier or metadata operation)."""
        return self.method == "PUT" and bool(self.blob) and "comp" not in self.query


@dataclass(frozen=True, slots=True)
class Record:
    """One request as the proxy handled it."""

    time: float  # time.monotonic() when it arrived
    method: str
    path: str
    query: str
    outcome: str  # forwarded, failed, dropped, lost, storm, override, upstream_error
    status: int | None  # the status the client got (None: connection closed instead)

    @property
    def blob(self) -> str:
        parts = self.path.lstrip("/").split("/", 2)
        return parts[2] if len(parts) > 2 else ""


class FirstN:
    """A thread-safe predicate: true for the first ``n`` requests that ``match`` accepts."""

    def __init__(self, n: int, match: Callable[[RequestInfo], bool] = lambda _: True) -> None:
        self.n, self.match, self.hits = n, match, 0
        self._lock = threading.Lock()

    def __call__(self, info: RequestInfo) -> bool:
        if not self.match(info):
            return False
        with self._lock:
            if self.hits >= self.n:
                return False
            self.hits += 1
            return True


class FaultProxy:
    """A reverse proxy from a free ``127.0.0.1`` port to ``127.0.0.1:upstream_port``; see the module."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        seed: int = 0,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        lost_response_rate: float = 0.0,
        fault_filter: Callable[[RequestInfo], bool] | None = None,
        status_override: Callable[[RequestInfo], int | None] | None = None,
        action_override: Callable[[RequestInfo], Action | None] | None = None,
    ) -> None:
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError("the fault proxy only forwards to the loopback interface")
        if (
            min(fail_rate, drop_rate, lost_response_rate) < 0
            or fail_rate + drop_rate + lost_response_rate > 1
        ):
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        self.upstream = f"http://{upstream_host}:{upstream_port}"
        self.fail_rate, self.drop_rate, self.lost_response_rate = fail_rate, drop_rate, lost_response_rate
        self.fault_filter = fault_filter
        self.status_override = status_override
        self.action_override = action_override
        self.storm_until = 0.0
        self.counts: collections.Counter[str] = collections.Counter()
        self.log: list[Record] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._storm_trigger: tuple[Callable[[RequestInfo], bool], float] | None = None
        self._hold: Callable[[RequestInfo], bool] | None = None
        self._held: collections.Counter[int] = collections.Counter()  # parked, by hold generation
        self._active = 0  # requests on their way upstream (parked ones included) or waiting for it
        self._generation = 0  # of holds: release() ends one
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # ------------------------------------------------------------------------------ public

    def address(self, container: str, prefix: str = "") -> str:
        """A tiervault ``azurite://`` address that goes through the proxy."""
        return f"azurite://127.0.0.1:{self.port}/{container}" + (f"/{prefix}" if prefix else "")

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def faulted(self) -> int:
        """Requests that got a fault instead of their real answer (storms and overrides included)."""
        with self._lock:
            return sum(self.counts[k] for k in ("failed", "dropped", "lost", "storm", "override"))

    @property
    def forwarding_now(self) -> int:
        """Requests on their way upstream and not parked by the current hold: being forwarded, or
        freed from an earlier hold and about to be."""
        with self._lock:
            return self._active - self._held[self._generation]

    @property
    def held_now(self) -> int:
        """Requests parked by the current ``hold_when`` right now."""
        with self._lock:
            return self._held[self._generation]

    def records(self, since: float = 0.0) -> list[Record]:
        """A copy of the log (requests that arrived at or after ``since``, a monotonic time)."""
        with self._lock:
            return [r for r in self.log if r.time >= since]

    def reset(self) -> None:
        """Forget counts and the log (the fault settings stay)."""
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def storm(self, seconds: float) -> None:
        """Answer every request with 503 for the next ``seconds``."""
        self.storm_until = time.monotonic() + seconds

    def storm_when(self, match: Callable[[RequestInfo], bool], seconds: float, *, after: int = 0) -> None:
        """Start a ``seconds`` storm at the first request that ``match`` accepts once ``after`` of
        them went through (that request is the first to get a 503)."""
        passed = FirstN(after, match)
        with self._lock:
            self._storm_trigger = (lambda info: match(info) and not passed(info), seconds)

    def hold_when(self, match: Callable[[RequestInfo], bool], *, after: int = 0) -> None:
        """Park matching requests before forwarding, except the first ``after`` of them (counted
        from now), until ``release()``. Replaces an earlier hold, whose parked requests go on."""
        passed = FirstN(after, match)
        with self._lock:
            self._hold = lambda info: match(info) and not passed(info)
            self._generation += 1
        self._wake()

    def release(self) -> None:
        """Stop holding: parked requests go on, new ones are not parked."""
        with self._lock:
            self._hold = None
            self._generation += 1
        self._wake()

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            raise RuntimeError(f"the fault proxy did not start: {failure[0] if failure else 'timeout'}")

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self.release()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FaultProxy 127.0.0.1:{self.port} -> {self.upstream} {dict(self.counts)}>"

    # ------------------------------------------------------------------------------ internals

    def _wake(self) -> None:
        loop, event = self._loop, self._release
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    async def _serve(self) -> None:
        self._release = asyncio.Event()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            auto_decompress=False,
            # send exactly what the client sent (Shared Key signs Content-Type, among others)
            skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        if self._release is not None:
            self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _decide(self, info: RequestInfo) -> tuple[str, int | None]:
        """(outcome, status) for a request: what ``_handle`` does with it."""
        now = time.monotonic()
        with self._lock:
            self.counts["seen"] += 1
            trigger = self._storm_trigger
            if trigger is not None and trigger[0](info):
                self._storm_trigger = None
                self.storm_until = now + trigger[1]
            if now < self.storm_until:
                return "storm", 503
        if self.status_override is not None:
            status = self.status_override(info)
            if status is not None:
                return "override", status
        if self.action_override is not None:
            action = self.action_override(info)
            if action is not None:
                return {"drop": "dropped", "lost": "lost"}[action], None
        if self.fault_filter is None or self.fault_filter(info):
            with self._lock:
                u = self._rng.random()
            if u < self.fail_rate:
                return "failed", 503
            if u < self.fail_rate + self.drop_rate:
                return "dropped", None
            if u < self.fail_rate + self.drop_rate + self.lost_response_rate:
                return "lost", None
        return "forwarded", None

    def _note(self, arrived: float, request: web.Request, outcome: str, status: int | None) -> None:
        with self._lock:
            if outcome != "forwarded":
                self.counts[outcome] += 1
            self.log.append(
                Record(arrived, request.method, unquote(request.path), request.query_string, outcome, status)
            )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        info = RequestInfo(
            request.method,
            unquote(request.path),
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
        )
        outcome, status = self._decide(info)
        if outcome in ("storm", "failed", "override"):
            self._note(arrived, request, outcome, status)
            assert status is not None
            return _error_response(request, status)
        if outcome == "dropped":
            self._note(arrived, request, outcome, None)
            return _close(request)
        with self._lock:
            self._active += 1
        try:
            return await self._forward(request, arrived, outcome, info)
        finally:
            with self._lock:
                self._active -= 1

    async def _forward(
        self, request: web.Request, arrived: float, outcome: str, info: RequestInfo
    ) -> web.Response:
        await self._wait_if_held(info)
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        assert self._session is not None
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.rel_url.raw_path_qs,
                headers=headers,
                data=body if body or "Content-Length" in request.headers else None,
                allow_redirects=False,
            ) as upstream:
                answer = await upstream.read()
                answer_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
                answer_status = upstream.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            self._note(arrived, request, "upstream_error", None)
            return _close(request)
        with self._lock:
            self.counts["forwarded"] += 1
        if outcome == "lost":
            self._note(arrived, request, "lost", None)
            return _close(request)
        self._note(arrived, request, "forwarded", answer_status)
        response = web.Response(status=answer_status, headers=answer_headers)
        if request.method != "HEAD" and answer_status not in (204, 304):
            response.body = answer
        return response

    async def _wait_if_held(self, info: RequestInfo) -> None:
        with self._lock:
            hold = self._hold
            parked = hold is not None and hold(info)
            generation = self._generation
            if parked:
                self.counts["held"] += 1
                self._held[generation] += 1
        if not parked:
            return
        assert self._release is not None
        try:
            while True:
                with self._lock:
                    if self._generation != generation:
                        return
                self._release.clear()
                await self._release.wait()
        finally:
            with self._lock:
                self._held[generation] -= 1


def _error_response(request: web.Request, status: int) -> web.Response:
    """An answer shaped like Azure Storage's: ``x-ms-error-code`` and an XML ``<Error>`` body."""
    code = ERROR_CODES.get(status, "InternalError")
    request_id = str(uuid.uuid4())
    headers = {
        "x-ms-error-code": code,
        "x-ms-request-id": request_id,
        "x-ms-version": request.headers.get("x-ms-version", "2026-06-06"),
        "Server": "tiervault-faultproxy",
        "Date": formatdate(usegmt=True),
    }
    if status in (429, 503):
        headers["Retry-After"] = "1"
    if request.method == "HEAD":
        return web.Response(status=status, headers=headers)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    message = f"Injected by the test fault proxy.\nRequestId:{request_id}\nTime:{now}"
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    headers["Content-Type"] = "application/xml"
    return web.Response(status=status, headers=headers, body=body)


def _close(request: web.Request) -> web.Response:
    """Close the client's connection without an answer (the returned response is never sent)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)
