"""The UI's web application: routes that read through the handler and render pages.

Read-only: it looks records up, searches, walks lineage, re-hashes files and
serves their bytes, and never writes to the catalog or the store. Catalog and
storage calls run on elliptio's IO loop (where the handler's connections live);
the server's own loop only waits for them. File bytes leave the store only
through the storage's verified read (`Storage.read_bytes` / `open_local`, both
checked against the recorded sha256), for a file named in a committed record:
the request names a record and one of its relpaths, never a storage path.
Reading in the UI is not an input of any run: no lineage is recorded. The
lineage picture comes from Graphviz when ``dot`` is installed, else from the
layout in `graph`; both show the same nodes, links and counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elliptio._catalog.filters import conjoin
from elliptio._errors import (
    ArtifactDeletedError,
    ArtifactNotFoundError,
    ElliptioError,
    OfflineError,
    QueryError,
)
from elliptio._handler import AsyncHandler
from elliptio._lifecycle import deleted_error
from elliptio._models import FileRecord, Metadata, upgrade_record
from elliptio._redact import redact_url
from elliptio._sync import get_loop

from . import graphviz, pages, preview
from .graph import Picture, draw, to_dot
from .html import SCRIPT, esc, href, page, ref_path
from .search import PAGE_SIZE, SearchForm

__all__ = ["create_app"]

T = TypeVar("T")

MAX_DEPTH = 8
MAX_PREVIEWS = 6
# Bytes served whole from a non-local store; larger files: `elliptio download`.
MAX_REMOTE_DOWNLOAD = 256 * 2**20
_SEARCH_FIELDS = ["name", "name_version", "username", "creation_time", "labels", "files"]
_VERSION_FIELDS = ["name", "name_version", "username", "creation_time"]
_CHUNK = 2**20


class _Headers:
    """Security headers on every answer: no script but our own, no framing, no sniffing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (
                        b"content-security-policy",
                        b"default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                        b"img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                        b"base-uri 'none'",
                    ),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with)


class _SameSite:
    """Refuse what another site's page makes a browser ask for (``Sec-Fetch-Site``):
    an image, a frame, a script or a fetch of this UI from a web page the user has
    open would start searches, previews and hashes here (hanging the UI for
    everyone) and tell that page what exists by whether it loads. Following a
    link to the UI from elsewhere (a top-level navigation the user clicked,
    ``Sec-Fetch-User: ?1``) is answered; a request without the header (curl, an
    older browser) too. A prefetch or prerender (``Sec-Purpose``), which a
    page's speculation rules start without a click, is not; nor is a navigation
    with no click (a script setting ``location``, a meta refresh, the opener of
    a UI tab navigating it again and again, a browser that does not say): it
    gets a page that does nothing but offer the link to click."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", []))
            site = headers.get(b"sec-fetch-site", b"same-origin")
            navigation = (
                headers.get(b"sec-fetch-mode") == b"navigate"
                and headers.get(b"sec-fetch-dest", b"document") == b"document"
            )
            # A prefetch or prerender (speculation rules on any page, with no click)
            # says so; a real navigation follows if the user does click.
            speculative = b"sec-purpose" in headers or b"prefetch" in headers.get(b"purpose", b"")
            refused = PlainTextResponse(
                "this UI answers its own pages, and links followed to it, only", 403
            )
            if speculative or (site not in (b"same-origin", b"none") and not navigation):
                await refused(scope, receive, send)
                return
            if site not in (b"same-origin", b"none") and headers.get(b"sec-fetch-user") != b"?1":
                if scope["method"] in ("GET", "HEAD"):
                    await _unclicked(scope, receive, send)
                else:  # a form sent by a script: no page of ours to offer
                    await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _unclicked(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to another site's navigation with no click: the link, nothing done."""
    path = "/" + quote(str(scope["path"]).lstrip("/"), safe="/:@!$&'()*+,;=-._~")
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    target = path + ("?" + query if query else "")
    body = (
        "<h1>Opened from another site</h1><p>Another site's page sent your browser "
        "here without a click, so nothing was looked up. Open it if you meant to: "
        f'<a href="{esc(target)}" id=continue>{esc(target)}</a></p>'
    )
    await HTMLResponse(page("Opened from another site", body), status_code=403)(
        scope, receive, send
    )


def _problem(err: BaseException) -> str:
    return redact_url(f"{type(err).__name__}: {err}")


def create_app(handler: AsyncHandler, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The application over ``handler``'s catalog and store.

    Args:
        handler: whose catalog and store to show; its calls run on elliptio's IO loop.
        allowed_hosts: ``Host`` headers to answer (DNS rebinding guard);
            ``None``: the loopback names only.
    """

    async def io(coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, get_loop())
        return await asyncio.wrap_future(future)

    async def record(ref: str, *, tombstone: bool = False) -> Metadata:
        """The record ``ref`` names; a deleted one only with ``tombstone`` (its
        lineage, which it keeps, as `lineage` walks it), else `ArtifactDeletedError`."""

        async def read() -> Metadata:
            # Offline, the UI sends nothing either: as the handler's own calls.
            handler._online("read a record from the catalog", storage=False)
            aid = await handler.resolve(ref)
            found = upgrade_record(await handler.catalog.get(aid))
            if found.deleted is not None and not tombstone:  # as get() and find() treat it
                raise deleted_error(found)
            return found

        return await io(read())

    async def verified(rec: Metadata, file: FileRecord) -> bytes:
        async def read() -> bytes:
            handler._online("read a file", catalog=False)
            path = handler.storage.file_path(
                file.url, rec.artifact_id, file.relpath, reference=rec.reference is not None
            )
            return await handler.storage.read_bytes(path, file.sha256, file.size)

        return await io(read())

    async def search(request: Request) -> Response:
        form = SearchForm.from_params(request.query_params)
        try:
            flt = form.filter()

            async def run() -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
                handler._online("search the catalog", storage=False)
                docs = await handler.catalog.find(
                    conjoin([flt, {"deleted": None}]),
                    sort=form.sort_spec(),
                    skip=form.skip,
                    limit=PAGE_SIZE + 1,
                    fields=_SEARCH_FIELDS,
                )
                names = sorted({str(d["name"]) for d in docs[:PAGE_SIZE] if d.get("name")})
                found = await asyncio.gather(*(handler.catalog.aliases(n) for n in names))
                return docs, dict(zip(names, found, strict=True))

            docs, aliases = await io(run())
        except QueryError as err:
            html_ = pages.search_page(form, [], False, {}, error=str(err))
            return HTMLResponse(html_, status_code=400)
        has_next = len(docs) > PAGE_SIZE
        return HTMLResponse(pages.search_page(form, docs[:PAGE_SIZE], has_next, aliases))

    async def artifact(request: Request, verify: bool = False) -> Response:
        rec = await record(request.path_params["ref"])
        versions: list[dict[str, Any]] = []
        aliases: dict[str, int] = {}
        if rec.name:
            versions, aliases = await asyncio.gather(
                io(
                    handler.catalog.find(
                        {"name": rec.name, "deleted": None},
                        sort=[("name_version", -1)],
                        limit=100,
                        fields=_VERSION_FIELDS,
                    )
                ),
                io(handler.catalog.aliases(rec.name)),
            )
        previews: dict[str, str] = {}
        for file in rec.files:
            if len(previews) >= MAX_PREVIEWS:
                break
            what = preview.kind(file.relpath)
            if what is None:
                continue
            if file.size > preview.MAX_PREVIEW_BYTES:  # an image too: its <img> reads it all
                previews[file.relpath] = (
                    "<p class=muted>Too large to preview here; download it.</p>"
                )
            elif what == "image":
                try:  # offline, its <img> would be a broken picture: say why in place
                    handler._online("read a file", catalog=False)
                except OfflineError as err:
                    previews[file.relpath] = f"<div class=error>{esc(_problem(err))}</div>"
                    continue
                src = ref_path("/file", rec.artifact_id, file.relpath)
                previews[file.relpath] = f'<img src="{esc(src)}" alt="{esc(file.relpath)}">'
            else:
                try:
                    data = await verified(rec, file)
                except ElliptioError as err:  # damaged or missing: say so, show the rest
                    previews[file.relpath] = f"<div class=error>{esc(_problem(err))}</div>"
                else:  # on a thread: a slow preview must not hold the other pages
                    html_ = await asyncio.to_thread(preview.render, file.relpath, data)
                    previews[file.relpath] = html_
        report = await io(handler.verify(rec.artifact_id)) if verify else None
        return HTMLResponse(
            pages.artifact_page(
                rec, versions=versions, aliases=aliases, previews=previews, verify=report
            )
        )

    async def verify(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            raise HTTPException(403, "verify is only accepted from this UI's own pages")
        return await artifact(request, verify=True)

    async def file(request: Request) -> Response:
        rec = await record(request.path_params["ref"])
        relpath = request.path_params["relpath"]
        found = next((f for f in rec.files if f.relpath == relpath), None)
        if found is None:
            raise ArtifactNotFoundError(f"{rec.ref or rec.artifact_id} has no file {relpath!r}")
        suffix = "." + relpath.rsplit(".", 1)[-1].lower() if "." in relpath else ""
        media = preview.IMAGE_TYPES.get(suffix, "application/octet-stream")
        name = relpath.rsplit("/", 1)[-1]
        disposition = "inline" if media.startswith("image/") else "attachment"
        headers = {"content-disposition": f"{disposition}; filename*=UTF-8''{quote(name)}"}
        if handler.storage.is_local:
            path = handler.storage.file_path(
                found.url, rec.artifact_id, found.relpath, reference=rec.reference is not None
            )
            raw = await asyncio.to_thread(
                handler.storage.open_local, path, found.sha256, found.size
            )

            def chunks() -> Any:
                with raw:
                    while block := raw.read(_CHUNK):
                        yield block

            return StreamingResponse(chunks(), media_type=media, headers=headers)
        if found.size > MAX_REMOTE_DOWNLOAD:
            raise HTTPException(
                413,
                f"{relpath} is larger than the UI serves from this store; use "
                f"'elliptio download {rec.ref or rec.artifact_id}'",
            )
        return Response(await verified(rec, found), media_type=media, headers=headers)

    async def lineage(request: Request) -> Response:
        try:
            depth = min(max(int(request.query_params.get("depth", "2")), 1), MAX_DEPTH)
        except ValueError:
            depth = 2
        rec = await record(request.path_params["ref"], tombstone=True)
        aid = rec.artifact_id

        async def walk() -> tuple[Any, dict[str, str]]:
            graph = await handler.lineage(aid, "both", depth + 1)
            docs = await handler.catalog.find(
                {"artifact_id": {"$in": sorted(graph.nodes)}, "name": {"$ne": None}},
                fields=["name", "name_version"],
            )
            return graph, {d["artifact_id"]: pages.artifact_ref(d) for d in docs}

        graph, refs = await io(walk())

        def url(node: str) -> str:
            return href(ref_path("/lineage", node), {"depth": depth})

        def lay_out() -> tuple[Picture, str | None]:
            # Off the event loop: a wide lineage takes a while, and the other
            # pages keep answering meanwhile.
            picture = draw(graph, depth=depth, refs=refs, url=url)
            source, _ = to_dot(graph, depth=depth, refs=refs, url=url)
            return picture, graphviz.render(source)

        picture, svg = await asyncio.to_thread(lay_out)
        if svg is not None:  # Graphviz is installed: its layout, same nodes and links
            picture = dataclasses.replace(picture, svg=svg)
        root = {
            "artifact_id": aid,
            "name": rec.name,
            "name_version": rec.name_version,
            "deleted": rec.deleted is not None,
        }
        return HTMLResponse(pages.lineage_page(root, picture, depth, MAX_DEPTH))

    async def names(request: Request) -> Response:
        async def read() -> tuple[list[tuple[str, int, int]], dict[str, dict[str, int]]]:
            handler._online("list names", storage=False)
            return await handler.catalog.names(), await handler.catalog.all_aliases()

        rows, aliases = await io(read())
        return HTMLResponse(pages.names_page(rows, aliases))

    async def script(request: Request) -> Response:
        return Response(SCRIPT, media_type="text/javascript")

    def error(status: int, message: str) -> Response:
        return HTMLResponse(pages.error_page(status, redact_url(message)), status_code=status)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail if exc.status_code != 404 else f"no page at {request.url.path}"
        return error(exc.status_code, str(message))

    async def on_not_found(request: Request, exc: Exception) -> Response:
        text = str(exc.args[0]) if exc.args else str(exc)
        return error(404, text)

    async def on_deleted(request: Request, exc: Exception) -> Response:
        return error(410, str(exc))

    async def on_query(request: Request, exc: Exception) -> Response:
        return error(400, str(exc))

    async def on_offline(request: Request, exc: Exception) -> Response:
        return error(503, _problem(exc))

    async def on_elliptio(request: Request, exc: Exception) -> Response:
        return error(500, _problem(exc))

    async def on_any(request: Request, exc: Exception) -> Response:
        return error(500, f"{type(exc).__name__}: the server could not answer this page")

    routes = [
        Route("/", search),
        Route("/names", names),
        Route("/a/{ref}", artifact),
        Route("/a/{ref}/verify", verify, methods=["POST"]),
        Route("/file/{ref}/{relpath:path}", file),
        Route("/lineage/{ref}", lineage),
        Route("/_ui.js", script),
    ]
    hosts = allowed_hosts or ["127.0.0.1", "localhost", "[::1]", "::1"]
    handlers: dict[Any, Any] = {
        HTTPException: on_http,
        ArtifactNotFoundError: on_not_found,
        ArtifactDeletedError: on_deleted,
        QueryError: on_query,
        OfflineError: on_offline,
        ElliptioError: on_elliptio,
        Exception: on_any,
    }
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(_Headers),
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
            Middleware(_SameSite),
        ],
        exception_handlers=handlers,
    )
