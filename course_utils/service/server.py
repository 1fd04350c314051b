"""A local service that speaks OpenAI's files / fine-tuning / chat-completions HTTP API, so the
official `openai` client runs the whole fine-tuning workflow with only `base_url` changed, and a
local causal LM is really fine-tuned with LoRA behind it."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

from course_utils.service.chat import ApiError, ChatModels, not_found
from course_utils.service.jobs import TERMINAL, BaseModel, Store, Worker, new_id, tiny_base

DEFAULT_KEY = "sk-local-course"


def page(items: list[dict[str, Any]], query: dict[str, str], firstlast: bool = False) -> dict[str, Any]:
    """OpenAI's cursor pagination: `after` an id, at most `limit` items, and `has_more`."""
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        raise ApiError(400, "limit must be an integer.", "limit") from None
    if not 1 <= limit <= 10000:
        raise ApiError(400, "limit must be between 1 and 10000.", "limit")
    after = query.get("after")
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    data = items[:limit]
    result = {"object": "list", "data": data, "has_more": len(items) > limit}
    if firstlast:
        result.update(first_id=data[0]["id"] if data else None, last_id=data[-1]["id"] if data else None)
    return result


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


class Service:
    """The routes, independent of HTTP plumbing: (method, path, query, body) -> (status, payload)."""

    def __init__(self, root: str | Path, base: BaseModel | None = None, api_key: str | None = DEFAULT_KEY,
                 org: str = "course") -> None:
        self.store = Store(root)
        self.base = base or tiny_base()
        self.api_key = api_key
        self.worker = Worker(self.store, self.base, org)
        self.models = ChatModels(self.store, self.base)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.strip("/").split("/") if p]
        if parts[:1] != ["v1"]:
            raise ApiError(404, f"Unknown URL {path}.", None, "unknown_url")
        route = parts[1:]
        if route[:1] == ["files"]:
            return self.files(method, route[1:], query, body)
        if route[:2] == ["fine_tuning", "jobs"]:
            return self.jobs(method, route[2:], query, body)
        if route[:1] == ["models"] and method == "GET":
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "system" if n == self.base.name else "course"}
                    for n in self.models.names()]
            if len(route) == 1:
                return 200, {"object": "list", "data": data}
            match = [d for d in data if d["id"] == "/".join(route[1:])]
            if not match:
                raise ApiError(404, f"The model '{'/'.join(route[1:])}' does not exist.", "model", "model_not_found")
            return 200, match[0]
        if route == ["chat", "completions"] and method == "POST":
            return 200, self.models.complete(self.json_body(body))
        raise ApiError(404, f"Unknown URL {method} {path}.", None, "unknown_url")

    @staticmethod
    def json_body(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.", None, "invalid_json")
        return body

    def files(self, method: str, route: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not route and method == "POST":
            if not isinstance(body, dict) or "file" not in body:
                raise ApiError(400, "Upload a file as multipart/form-data field 'file'.", "file")
            purpose = body.get("purpose", "")
            if purpose not in ("fine-tune", "batch", "assistants", "user_data", "evals"):
                raise ApiError(400, f"Invalid purpose {purpose!r}.", "purpose")
            filename, data = body["file"]
            return 200, self.store.add_file(data, filename, purpose)
        if not route and method == "GET":
            files = [f for f in self.store.files() if f["purpose"] == query.get("purpose", f["purpose"])]
            if query.get("order") == "asc":
                files.reverse()
            return 200, page(files, query, firstlast=True)
        meta = self.store.file(route[0]) if route else None
        if meta is None:
            raise not_found("file", route[0] if route else "")
        if len(route) == 1 and method == "GET":
            return 200, meta
        if len(route) == 1 and method == "DELETE":
            self.store.delete_file(route[0])
            return 200, {"id": route[0], "object": "file", "deleted": True}
        if route[1:] == ["content"] and method == "GET":
            return 200, self.store.file_path(route[0]).read_bytes()
        raise ApiError(404, f"Unknown URL {method} /v1/files/{'/'.join(route)}.", None, "unknown_url")

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        model, file_id = body.get("model"), body.get("training_file")
        if model != self.base.name:
            raise ApiError(400, f"Model {model!r} is not available for fine-tuning here; use "
                                f"{self.base.name!r}.", "model", "model_not_available")
        meta = self.store.file(file_id) if isinstance(file_id, str) else None
        if meta is None or meta["purpose"] != "fine-tune":
            raise ApiError(400, f"Invalid file id {file_id!r}: upload it with purpose 'fine-tune'.",
                           "training_file", "invalid_file")
        method = body.get("method") or {"type": "supervised"}
        if not isinstance(method, dict) or method.get("type") != "supervised":
            raise ApiError(400, "Only method type 'supervised' is supported locally.", "method")
        hp = dict(body.get("hyperparameters") or {})
        hp.update((method.get("supervised") or {}).get("hyperparameters") or {})
        suffix = body.get("suffix") or None
        if suffix is not None and (not isinstance(suffix, str) or not re.fullmatch(r"[\w.-]{1,64}", suffix)):
            raise ApiError(400, "suffix must be 1-64 letters, digits, '-', '_' or '.'.", "suffix")
        hp = {k: hp.get(k, "auto") for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}
        job = {"id": new_id("ftjob"), "object": "fine_tuning.job", "created_at": int(time.time()),
               "error": None, "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp,
               "model": model, "organization_id": "org-" + self.worker.org, "result_files": [],
               "seed": int(body.get("seed") if body.get("seed") is not None else 42), "status": "validating_files",
               "trained_tokens": None, "training_file": file_id, "validation_file": body.get("validation_file"),
               "estimated_finish": None, "integrations": [], "metadata": body.get("metadata"),
               "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}, "suffix": suffix}
        self.store.save_job(job)
        self.store.add_event(job["id"], f"Created fine-tuning job: {job['id']}")
        self.worker.submit(job["id"])
        return job

    def jobs(self, method: str, route: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not route and method == "POST":
            return 200, public_job(self.create_job(self.json_body(body)))
        if not route and method == "GET":
            return 200, page([public_job(j) for j in self.store.jobs()], query)
        job = self.store.job(route[0])
        if job is None:
            raise not_found("fine-tuning job", route[0])
        tail = route[1:]
        if not tail and method == "GET":
            return 200, public_job(job)
        if tail == ["cancel"] and method == "POST":
            if job["status"] in TERMINAL:
                raise ApiError(400, f"Job {job['id']} is already {job['status']}.", None, "job_not_cancellable")
            self.worker.cancel(job["id"])
            job = self.store.update_job(job["id"], status="cancelled", finished_at=int(time.time()))
            self.store.add_event(job["id"], "Fine-tuning job cancelled")
            return 200, public_job(job)
        if tail == ["events"] and method == "GET":
            return 200, page(self.store.events(job["id"]), query)
        if tail == ["checkpoints"] and method == "GET":
            return 200, page(self.store.checkpoints(job["id"]), query, firstlast=True)
        raise ApiError(404, f"Unknown URL {method} /v1/fine_tuning/jobs/{'/'.join(route)}.", None, "unknown_url")

    def close(self) -> None:
        self.worker.stop()


def _parse_multipart(content_type: str, data: bytes) -> dict[str, Any]:
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    if not message.is_multipart():
        raise ApiError(400, "Malformed multipart/form-data body.", "file")
    fields: dict[str, Any] = {}
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            fields[name] = (part.get_filename(), payload)
        else:
            fields[name] = payload.decode("utf-8", errors="replace")
    return fields


def make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to one `Service` (auth, body parsing, errors as JSON)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep notebooks quiet
            pass

        def _send(self, status: int, payload: Any) -> None:
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                             else "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("multipart/form-data"):
                return _parse_multipart(ctype, data)
            if not data:
                return None
            try:
                return json.loads(data)
            except json.JSONDecodeError:
                raise ApiError(400, "The request body is not valid JSON.", None, "invalid_json") from None

        def _dispatch(self, method: str) -> None:
            try:
                key = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if service.api_key and key != service.api_key:
                    raise ApiError(401, "Incorrect API key provided.", None, "invalid_api_key")
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                body = self._body() if method in ("POST", "PUT", "PATCH") else None
                status, payload = service.handle(method, url.path, query, body)
            except ApiError as exc:
                status, payload = exc.status, exc.body
            except Exception as exc:  # anything unexpected is the request's fault here, never a 500
                status, payload = 400, ApiError(400, f"Could not process the request: {exc}").body
            self._send(status, payload)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

    return Handler


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody is listening on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class RunningService:
    """What a notebook needs to talk to a started service: pass these to `openai.OpenAI`."""

    base_url: str
    api_key: str
    root: Path
    service: Service


@contextlib.contextmanager
def local_service(root: str | Path | None = None, base: BaseModel | None = None, api_key: str = DEFAULT_KEY,
                  host: str = "127.0.0.1", port: int | None = None) -> Iterator[RunningService]:
    """Start the service in this process on a free loopback port; stop it when the block ends.
    Use `OpenAI(base_url=svc.base_url, api_key=svc.api_key)` inside the block."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="openai-local-"))
        service = Service(root, base, api_key)
        server = ThreadingHTTPServer((host, port or free_port(host)), make_handler(service))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield RunningService(f"http://{host}:{server.server_address[1]}/v1", api_key, Path(root), service)
        finally:
            server.shutdown()
            server.server_close()
            service.close()


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000, api_key: str = DEFAULT_KEY,
          profile: str = "tiny") -> None:
    """Run the service in the foreground (what `course serve-openai` calls) until Ctrl+C."""
    from course_utils.service.jobs import full_base

    service = Service(root, tiny_base() if profile == "tiny" else full_base(), api_key)
    server = ThreadingHTTPServer((host, port), make_handler(service))
    print(f"OpenAI-compatible fine-tuning service on http://{host}:{port}/v1 (data in {root}, "
          f"base model {service.base.name}); key: {api_key}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.close()


def follow_job(client: Any, job_id: str, poll: float = 0.5, timeout: float = 3600) -> Any:
    """Poll a fine-tuning job (local or OpenAI) with a progress bar fed by its step events, until it
    succeeds, fails or is cancelled; returns the final job object."""
    from tqdm.auto import tqdm

    bar, deadline = tqdm(desc=job_id, unit="step"), time.time() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        latest = client.fine_tuning.jobs.list_events(job_id, limit=10).data
        steps = [e.data for e in latest if getattr(e, "type", "") == "metrics" and e.data]
        if steps:
            bar.total = steps[0].get("total_steps") or bar.total
            bar.n = steps[0].get("step", bar.n)
            bar.set_postfix(status=job.status, loss=f"{steps[0].get('train_loss', float('nan')):.3f}")
        else:
            bar.set_postfix(status=job.status)
        bar.refresh()
        if job.status in TERMINAL or time.time() > deadline:
            bar.close()
            return job
        time.sleep(poll)
