"""OpenAI-shaped errors for the local service: `{"error": {"message", "type", "param", "code"}}`,
raised by every layer (store, worker, chat, HTTP) and turned into a response in one place."""

from __future__ import annotations

from typing import Any

# the `type` OpenAI's API puts in error bodies, by HTTP status
KINDS = {401: "invalid_request_error", 404: "invalid_request_error", 405: "invalid_request_error",
         413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error"}


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The JSON body OpenAI's API returns with every error, which the `openai` client parses."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(Exception):
    """A request the service refuses: becomes an OpenAI-shaped JSON response with its status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, kind or KINDS.get(status, "invalid_request_error"), param, code)


def not_found(what: str, ident: str) -> ApiError:
    """The 404 OpenAI returns for an unknown file, job or model id."""
    return ApiError(404, f"No {what} found with id '{short(ident)}'.", "id", f"{what.replace(' ', '_')}_not_found")


def short(value: Any, limit: int = 60) -> str:
    """A client-supplied value quoted back in an error message, cut so a huge one cannot bloat it."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
