"""The service's on-disk store: files, jobs, events, checkpoints and the index of fine-tuned
models, as JSON under one folder. Every write is atomic (a temporary file, fsync, `os.replace`)
and every event is its own file, so a service killed mid-write leaves either the old state or the
new one, never half a record; and one folder is served by one process at a time."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one service per folder is then up to the user
    fcntl = None

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("validating_files", "queued", "running")
_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
log = logging.getLogger(__name__)


def new_id(prefix: str) -> str:
    """An OpenAI-looking id: `file-...`, `ftjob-...`, `ftevent-...`."""
    return f"{prefix}-{secrets.token_hex(12)}"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers, and a crash, see the old or the new file only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FolderInUse(RuntimeError):
    """Another running service already owns this data folder."""


class Store:
    """Files, jobs, events and checkpoints on disk, so a restart loses nothing finished."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for sub in ("files", "jobs", "models"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._seq: dict[str, int] = {}
        self._lockfile = (self.root / "service.lock").open("a+")
        if fcntl is not None:
            try:
                fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._lockfile.close()
                raise FolderInUse(f"{self.root} is used by another running service; stop it or "
                                  "choose another data folder") from None
        for stale in self.root.rglob(".*.tmp"):  # temporaries of writes a crash interrupted
            stale.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the folder for the next service."""
        self._lockfile.close()

    def _read(self, path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None

    def _write(self, path: Path, obj: Any) -> None:
        atomic_write(path, json.dumps(obj).encode())

    @staticmethod
    def valid_id(ident: Any) -> bool:
        """Whether a client-supplied id can name a record (no path tricks, bounded length)."""
        return isinstance(ident, str) and _ID.fullmatch(ident) is not None

    # ---------------------------------------------------------------- files
    def add_file(self, source: IO[bytes], filename: str, purpose: str) -> dict[str, Any]:
        """Store an uploaded file (streamed from `source`) and return its `file` object."""
        file_id = new_id("file")
        fd, tmp = tempfile.mkstemp(dir=self.root / "files", prefix=f".{file_id}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            shutil.copyfileobj(source, fh, 1 << 20)
            size = fh.tell()
            os.fsync(fh.fileno())
        os.replace(tmp, self.file_path(file_id))
        meta = {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed",
                "status_details": None, "expires_at": None}
        self._write(self.root / "files" / f"{file_id}.json", meta)
        return meta

    def file(self, file_id: Any) -> dict[str, Any] | None:
        return self._read(self.root / "files" / f"{file_id}.json") if self.valid_id(file_id) else None

    def file_path(self, file_id: str) -> Path:
        return self.root / "files" / f"{file_id}.bin"

    def files(self) -> list[dict[str, Any]]:
        metas = [self._read(p) for p in (self.root / "files").glob("file-*.json")]
        return sorted((m for m in metas if m), key=lambda m: (m["created_at"], m["id"]), reverse=True)

    def delete_file(self, file_id: str) -> None:
        with self.lock:  # metadata first: a crash in between leaves an orphan blob, not a broken id
            (self.root / "files" / f"{file_id}.json").unlink(missing_ok=True)
            self.file_path(file_id).unlink(missing_ok=True)

    # ---------------------------------------------------------------- jobs
    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def job(self, job_id: Any) -> dict[str, Any] | None:
        return self._read(self.job_dir(job_id) / "job.json") if self.valid_id(job_id) else None

    def save_job(self, job: dict[str, Any]) -> None:
        with self.lock:
            (self.job_dir(job["id"]) / "events").mkdir(parents=True, exist_ok=True)
            self._write(self.job_dir(job["id"]) / "job.json", job)

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change a job that is still active; returns None (and changes nothing) once it has
        reached a terminal status, so a cancel can never be overwritten by the worker."""
        with self.lock:
            job = self.job(job_id)
            if job is None or job["status"] in TERMINAL:
                return None
            job.update(fields)
            self.save_job(job)
            return job

    def jobs(self) -> list[dict[str, Any]]:
        jobs = [self._read(p) for p in (self.root / "jobs").glob("ftjob-*/job.json")]
        return sorted((j for j in jobs if j), key=lambda j: (j["created_at"], j["id"]), reverse=True)

    # ---------------------------------------------------------------- events
    def add_event(self, job_id: str, message: str, level: str = "info", data: dict | None = None,
                  kind: str = "message") -> dict[str, Any]:
        """Append an event as its own file, named by a per-job sequence number."""
        event = {"id": new_id("ftevent"), "object": "fine_tuning.job.event", "created_at": int(time.time()),
                 "level": level, "message": message, "data": data or {}, "type": kind}
        folder = self.job_dir(job_id) / "events"
        with self.lock:
            if job_id not in self._seq:
                names = [p.name for p in folder.glob("*.json")]
                self._seq[job_id] = max((int(n.split("-", 1)[0]) for n in names), default=0)
            self._seq[job_id] += 1
            self._write(folder / f"{self._seq[job_id]:08d}-{event['id']}.json", event)
        return event

    def events(self, job_id: str, limit: int, after: str | None = None) -> tuple[list[dict[str, Any]], bool]:
        """A page of events, newest first as OpenAI lists them, and whether more follow."""
        names = sorted((p.name for p in (self.job_dir(job_id) / "events").glob("*.json")), reverse=True)
        if after:
            ids = [n.split("-", 1)[1].removesuffix(".json") for n in names]
            names = names[ids.index(after) + 1:] if after in ids else []
        page = []
        for name in names[:limit]:
            event = self._read(self.job_dir(job_id) / "events" / name)
            if event is not None:
                page.append(event)
        return page, len(names) > limit

    # ---------------------------------------------------------------- checkpoints and models
    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return self._read(self.job_dir(job_id) / "checkpoints.json") or []

    def model_index(self) -> dict[str, str]:
        """Published model names -> adapter folders (relative to the store's root)."""
        return self._read(self.root / "models" / "index.json") or {}

    def adapter_dir(self, model_name: str) -> Path | None:
        """Where the adapter of an `ft:` model (or one of its checkpoints) was saved, if published."""
        rel = self.model_index().get(model_name)
        return self.root / rel if rel and (self.root / rel).exists() else None

    def publish(self, job_id: str, models: dict[str, Path], checkpoints: list[dict[str, Any]],
                events: tuple[str, ...] = (), **fields: Any) -> dict[str, Any] | None:
        """Finish a job as `succeeded` and make its models answer chat, in one step under the lock:
        a job cancelled a moment before publishes nothing (returns None). Its final `events` are
        written before the status flips, so a client that sees `succeeded` also sees them."""
        with self.lock:
            job = self.job(job_id)
            if job is None or job["status"] in TERMINAL:
                return None
            self._write(self.job_dir(job_id) / "checkpoints.json", checkpoints)
            index = self.model_index()
            index.update({name: str(path.relative_to(self.root)) for name, path in models.items()})
            self._write(self.root / "models" / "index.json", index)
            for message in events:
                self.add_event(job_id, message)
            return self.update_job(job_id, status="succeeded", **fields)

    def discard_models(self, job_id: str) -> None:
        """Delete the adapters a job saved but never published (it failed or was cancelled)."""
        published = set(self.model_index().values())
        folder = self.root / "models" / job_id
        if folder.exists() and not any(p.startswith(f"models/{job_id}/") for p in published):
            shutil.rmtree(folder, ignore_errors=True)
