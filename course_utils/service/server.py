"""A local service that speaks OpenAI's files / fine-tuning / models / chat-completions HTTP API
on FastAPI and uvicorn, so the official `openai` client runs the whole fine-tuning workflow with
only `base_url` changed while a local causal LM is really fine-tuned with LoRA behind it."""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from course_utils.service.chat import ChatModels
from course_utils.service.errors import ApiError, error_body, not_found, short
from course_utils.service.jobs import OPENAI_FINETUNABLE, LocalBase, Worker, new_job, tiny_base
from course_utils.service.middleware import ApiKey, BodyLimit, ServerErrors
from course_utils.service.schemas import ChatRequest, JobRequest
from course_utils.service.store import Store
from course_utils.service.training import METHODS, method_object

DEFAULT_KEY = "sk-local-course"
PURPOSES = ("fine-tune", "batch", "assistants", "user_data", "evals", "vision")
log = logging.getLogger("course_utils.service")


class Service:
    """The service's state behind the routes: store, worker, chat models, key and body limits."""

    def __init__(self, root: str | Path, base: LocalBase | None = None, api_key: str | None = DEFAULT_KEY,
                 org: str = "course", max_running: int = 1, json_limit: int = 2 << 20,
                 upload_limit: int = 100 << 20) -> None:
        self.store = Store(root)
        self.base = base or tiny_base()
        self.api_key, self.org = api_key, org
        self.json_limit, self.upload_limit = json_limit, upload_limit
        try:
            self.worker = Worker(self.store, self.base, org, max_running)
        except BaseException:
            self.store.close()
            raise
        self.models = ChatModels(self.store, self.base)

    def close(self) -> None:
        """Stop the worker (a job still training is marked failed) and release the folder."""
        self.worker.stop()
        self.store.close()

    def create_job(self, req: JobRequest) -> dict[str, Any]:
        """Check a job request against the store and queue it; a bad reference is a 400."""
        if not self.base.serves(req.model):
            raise ApiError(400, f"Model '{short(req.model)}' is not available for fine-tuning here; use one of "
                                f"OpenAI's fine-tunable models ({', '.join(OPENAI_FINETUNABLE)}) or "
                                f"'{self.base.name}'.", "model", "model_not_available")
        for param, file_id in (("training_file", req.training_file), ("validation_file", req.validation_file)):
            meta = self.store.file(file_id) if file_id is not None else {"purpose": "fine-tune"}
            if meta is None or meta["purpose"] != "fine-tune":
                raise ApiError(400, f"Invalid file id '{short(file_id)}' for {param}: upload the file with "
                                    "purpose 'fine-tune' first.", param, "invalid_file")
        method = req.method.type if req.method is not None else "supervised"
        if method not in METHODS:
            raise ApiError(400, f"This local service runs {' and '.join(repr(m) for m in METHODS)} fine-tuning, "
                                f"not '{method}'.", "method.type", "unsupported_method")
        if req.method is not None and (stray := req.method.stray_block()):
            raise ApiError(400, f"method.{stray} was given for a job of type '{method}'; give the settings "
                                f"in method.{method}.", f"method.{stray}", "invalid_value")
        hp = req.hyperparameters.model_dump(exclude_unset=True) if req.hyperparameters else {}
        if req.method is not None:
            hp.update(req.method.hyperparameters())
        keys = ("batch_size", "beta", "learning_rate_multiplier", "n_epochs") if method == "dpo" else \
            ("batch_size", "learning_rate_multiplier", "n_epochs")
        hp = {k: hp.get(k, "auto") for k in keys}
        request = req.model_dump()
        request.update(hyperparameters={k: v for k, v in hp.items() if k != "beta"},
                       method=method_object(method, hp), seed=42 if req.seed is None else req.seed)
        job = new_job(request, self.base, self.org)
        self.store.save_job(job)
        self.store.add_event(job["id"], f"Created fine-tuning job: {job['id']}")
        if req.model != self.base.name:
            self.store.add_event(job["id"], f"This local service fine-tunes its model '{self.base.name}' in "
                                            f"place of '{req.model}'; the name is kept so OpenAI code runs unchanged.")
        self.worker.submit(job["id"])
        return job

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not finished; the worker stops at its next step and publishes nothing."""
        if self.store.job(job_id) is None:
            raise not_found("fine-tuning job", job_id)
        job = self.store.update_job(job_id, status="cancelled", finished_at=int(time.time()))
        if job is None:
            raise ApiError(400, f"Job {job_id} is already {self.store.job(job_id)['status']}.", None,
                           "job_not_cancellable")
        self.worker.cancel(job_id)
        self.store.add_event(job_id, "Fine-tuning job cancelled")
        return job


def page(items: list[dict[str, Any]], limit: int, after: str | None, firstlast: bool = False) -> dict[str, Any]:
    """OpenAI's cursor pagination: items `after` an id, at most `limit` of them, and `has_more`."""
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    data = items[:limit]
    result = {"object": "list", "data": data, "has_more": len(items) > limit}
    if firstlast:
        result.update(first_id=data[0]["id"] if data else None, last_id=data[-1]["id"] if data else None)
    return result


def _found(record: dict[str, Any] | None, what: str, ident: str) -> dict[str, Any]:
    if record is None:
        raise not_found(what, ident)
    return record


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    err = exc.errors()[0]
    loc = [str(x) for x in err["loc"][1:]] if err["loc"] and err["loc"][0] in ("body", "query", "path") \
        else [str(x) for x in err["loc"]]
    param = ".".join(loc) or None
    if err["type"] == "json_invalid":
        return JSONResponse(error_body("The request body is not valid JSON.", code="invalid_json"), 400)
    if err["type"] == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif err["type"] == "missing":
        message = f"Missing required parameter: '{param}'." if param else "The request needs a JSON object body."
    else:
        message = f"Invalid value for '{param}': {err['msg']}." if param else f"Invalid request body: {err['msg']}."
    return JSONResponse(error_body(message, param=param, code="invalid_value" if param else None), 400)


def create_app(service: Service) -> FastAPI:
    """The ASGI application: OpenAI's routes over `service`, with OpenAI-shaped errors only."""
    app = FastAPI(title="finetune-course local OpenAI-compatible service", version="1")
    store, models = service.store, service.models
    app.add_middleware(ServerErrors)
    app.add_middleware(BodyLimit, json_limit=service.json_limit, upload_limit=service.upload_limit)
    app.add_middleware(ApiKey, key=service.api_key)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message, code = f"Unknown request URL: {request.method} {short(request.url.path, 200)}.", "unknown_url"
        elif exc.status_code == 405:
            message, code = f"Method {request.method} is not allowed for {short(request.url.path, 200)}.", \
                "method_not_allowed"
        else:
            message, code = str(exc.detail), {413: "request_too_large"}.get(exc.status_code)
        return JSONResponse(error_body(message, param=None, code=code), exc.status_code, headers=exc.headers)

    Limit = Query(20, ge=1, le=10000)

    @app.post("/v1/files")
    def upload(file: UploadFile = File(...), purpose: str = Form(...)) -> dict[str, Any]:
        if purpose not in PURPOSES:
            raise ApiError(400, f"Invalid purpose '{short(purpose)}'; use one of {', '.join(PURPOSES)}.", "purpose")
        name = Path(file.filename or "upload").name[:255] or "upload"
        return store.add_file(file.file, name, purpose)

    @app.get("/v1/files")
    def list_files(purpose: str | None = None, limit: int = Query(10000, ge=1, le=10000), after: str | None = None,
                   order: str = Query("desc", pattern="^(asc|desc)$")) -> dict[str, Any]:
        files = [f for f in store.files() if purpose in (None, f["purpose"])]
        return page(files[::-1] if order == "asc" else files, limit, after, firstlast=True)

    def file_meta(file_id: str) -> dict[str, Any]:
        return _found(store.file(file_id), "file", file_id)

    @app.get("/v1/files/{file_id}")
    def get_file(file_id: str) -> dict[str, Any]:
        return file_meta(file_id)

    @app.delete("/v1/files/{file_id}")
    def delete_file(file_id: str) -> dict[str, Any]:
        store.delete_file(file_meta(file_id)["id"])
        return {"id": file_id, "object": "file", "deleted": True}

    @app.get("/v1/files/{file_id}/content")
    def file_content(file_id: str) -> Response:
        return Response(store.file_path(file_meta(file_id)["id"]).read_bytes(), media_type="application/octet-stream")

    @app.post("/v1/fine_tuning/jobs")
    def create_job(req: JobRequest) -> dict[str, Any]:
        return service.create_job(req)

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(limit: int = Limit, after: str | None = None) -> dict[str, Any]:
        return page(store.jobs(), limit, after)

    def job(job_id: str) -> dict[str, Any]:
        return _found(store.job(job_id), "fine-tuning job", job_id)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return job(job_id)

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict[str, Any]:
        return service.cancel_job(job_id)

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    def events(job_id: str, limit: int = Limit, after: str | None = None) -> dict[str, Any]:
        data, more = store.events(job(job_id)["id"], limit, after)
        return {"object": "list", "data": data, "has_more": more}

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def checkpoints(job_id: str, limit: int = Query(10, ge=1, le=10000), after: str | None = None) -> dict[str, Any]:
        return page(store.checkpoints(job(job_id)["id"]), limit, after, firstlast=True)

    def model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0,
                "owned_by": "system" if service.base.serves(name) else "org-" + service.org}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_object(n) for n in models.names()]}

    @app.get("/v1/models/{name:path}")
    def get_model(name: str) -> dict[str, Any]:
        if not models.exists(name):
            raise ApiError(404, f"The model '{short(name)}' does not exist.", "model", "model_not_found")
        return model_object(name)

    @app.post("/v1/chat/completions", response_model=None)
    def chat(req: ChatRequest) -> dict[str, Any] | StreamingResponse:
        if req.stream:
            return StreamingResponse(models.stream(req), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        return models.complete(req)

    return app


def _start(service: Service, host: str, port: int, quiet: bool = True):
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(create_app(service), lifespan="off", timeout_keep_alive=5,
                            log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
                            access_log=not quiet, log_level="warning" if quiet else "info")
    return uvicorn.Server(config), sock


@dataclass
class RunningService:
    """What a notebook needs to talk to a started service: pass these to `openai.OpenAI`."""

    base_url: str
    api_key: str
    root: Path
    service: Service


@contextlib.contextmanager
def local_service(root: str | Path | None = None, base: LocalBase | None = None, api_key: str = DEFAULT_KEY,
                  host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[RunningService]:
    """Start the service in this process on a free loopback port (or `port`); stop it when the
    block ends. Use `OpenAI(base_url=svc.base_url, api_key=svc.api_key)` inside the block.
    `options` go to `Service` (max_running, json_limit, upload_limit, org)."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="openai-local-"))
        service = Service(root, base, api_key, **options)
        stack.callback(service.close)
        server, sock = _start(service, host, port)
        stack.callback(sock.close)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="openai-local-http",
                                  daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(setattr, server, "should_exit", True)
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local OpenAI-compatible service did not start")
            time.sleep(0.02)
        url_host = f"[{host}]" if ":" in host else host
        yield RunningService(f"http://{url_host}:{sock.getsockname()[1]}/v1", api_key, Path(root), service)


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000, api_key: str = DEFAULT_KEY,
          profile: str = "tiny", max_running: int = 1) -> None:
    """Run the service in the foreground (what `course serve-openai` calls) until Ctrl+C."""
    from course_utils.service.jobs import full_base

    service = Service(root, tiny_base() if profile == "tiny" else full_base(), api_key, max_running=max_running)
    try:
        server, sock = _start(service, host, port, quiet=False)
        print(f"OpenAI-compatible fine-tuning service on http://{host}:{port}/v1 (data in {root}, base model "
              f"{service.base.name} on {service.base.device}, {max_running} job(s) at once); key: {api_key}",
              flush=True)
        server.run(sockets=[sock])
    finally:
        service.close()
