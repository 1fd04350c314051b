"""ASGI layers around the service's routes: the API key, the body size limit (413), and the
last line of defence that turns a bug into a logged 500 with an OpenAI-shaped body and no
Python text, so that a server fault is never reported as the client's."""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

from course_utils.service.errors import error_body

log = logging.getLogger("course_utils.service")
Scope, Message = dict[str, Any], dict[str, Any]
Receive, Send = Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SERVER_ERROR = "The server had an error while processing your request. Sorry about that! Its log has the details."


async def send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    """A complete JSON response straight from a middleware (no route involved)."""
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if close:  # the request body was not read: end the connection rather than parse it as a request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


DRAIN_LIMIT = 64 << 20  # bodies up to this size are read and dropped before a 413


def too_large(limit: int) -> str:
    return f"The request body exceeds this service's limit of {limit:,} bytes."


class BodyTooLarge(HTTPException):
    """A request body over its limit, found while it streams in (answered as 413, then closed)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit), headers={"connection": "close"})


class BodyLimit:
    """Refuse a body over `upload_limit` (multipart) or `json_limit` (anything else) with 413: at
    once when Content-Length says so, else as soon as the streamed bytes pass it."""

    def __init__(self, app: ASGIApp, json_limit: int, upload_limit: int) -> None:
        self.app, self.json_limit, self.upload_limit = app, json_limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        multipart = _header(scope, b"content-type").lower().startswith("multipart/form-data")
        limit = self.upload_limit if multipart else self.json_limit
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > limit:
            if int(length) <= DRAIN_LIMIT:
                # read and drop the body first: a client still sending when the connection closes
                # sees a reset instead of the 413 (it did, now and then, under load)
                while (message := await receive())["type"] == "http.request" and message.get("more_body"):
                    pass
            return await send_json(send, 413, error_body(too_large(limit), code="request_too_large"), close=True)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class ApiKey:
    """Answer 401 unless `Authorization: Bearer <key>` matches, before any body is read."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.key and scope["path"].startswith("/v1"):
            given = _header(scope, b"authorization")
            if not given.startswith("Bearer ") or given.removeprefix("Bearer ").strip() != self.key:
                message = ("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
                           if not given else "Incorrect API key provided.")
                return await send_json(send, 401, error_body(message, code="invalid_api_key"))
        await self.app(scope, receive, send)


class ServerErrors:
    """Log an unhandled exception with its traceback and answer a 500 that reveals nothing of it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, error_body(SERVER_ERROR, "server_error"))
