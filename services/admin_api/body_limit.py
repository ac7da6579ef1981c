"""Request bodies above a size are refused before any work: on the Content-Length header, or
as soon as a streamed body passes the size, never buffered whole."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = b"application/problem+json"


async def _too_large(send: Send, max_bytes: int) -> None:
    detail = f"request body larger than {max_bytes} bytes"
    body = json.dumps(
        {"type": "about:blank", "title": "Content Too Large", "status": 413, "detail": detail}
    ).encode()
    # Closing the connection: the rest of the body is never read.
    headers = [
        (b"content-type", PROBLEM_JSON),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a body above max_bytes, before the app (and its key check) reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await _too_large(send, self.max_bytes)
                return
        received = 0
        refused = started = False

        async def counted() -> Message:
            # Past the limit the app is told the client left (FastAPI turns an exception
            # while reading into a 400 of its own), and the 413 is answered here.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await _too_large(send, self.max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, tracked)
