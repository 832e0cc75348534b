"""Deliverables: hand a batch of files to another team, complete or not at all, exactly once.

``deliver(files, to=...)`` sends a *batch*: the files, then a manifest ``_manifest.json``
(files, rows, bytes, sha256, schema, run id) written **last**, so a receiver treats a batch as
complete only once its manifest is there and can verify every file against it.

Destinations:

* a local directory (an outbox): ``<to>/<batch>/<file>``, each file published atomically;
* an ``http(s)://`` URL: each file uploaded as ``multipart/form-data`` POST (default) or as a
  PUT to ``<to>/<batch>/<file>``, with retries on network errors, 429 and 5xx (tenacity), auth
  from secrets (``auth="${TOKEN}"`` becomes a bearer token; header values may use ``${NAME}``);
* an fsspec URL (``s3://bucket/outbox``): like the outbox, one object per file.

Exactly once, across runs: the default batch id is derived from the content (each file's name
and sha256 before encryption) and the destination, so delivering the same data again finds the
batch's manifest and is a no-op that says so (``already_delivered``); a new version of a file is
a new batch. The manifest stays the commit point: a batch without one is incomplete, and the
next delivery of the same content completes it (same names, overwritten). An HTTP PUT
destination is asked for the manifest first (``GET <to>/<batch>/_manifest.json``); a POST
destination gets an ``Idempotency-Key`` of batch and file name, the same on every rerun.

With ``encrypt_to="${PARTNER_AGE_KEY}"`` (the receiver's age public key) each file is encrypted
in the standard age format (``<file>.age``); the receiver runs ``age -d -i key.txt file.age``.
See :mod:`bubbles.data.encrypt`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._context import current_task, log_metric
from .._errors import BubblesError, ConfigError, DataError, MissingDependencyError
from .._secrets import Secret, mask, resolve
from . import encrypt as _age
from . import lineage
from .encrypt import decrypt_file
from .files._atomic import atomic_file, step
from .files._common import WrittenFile
from .files._fs import locate
from .files._leftovers import remove_stale_temp_dirs

__all__ = ["DeliveryError", "DeliveryReceipt", "decrypt_file", "deliver"]

MANIFEST = "_manifest.json"
_CHUNK = 1 << 20
_STAGING = "bubbles-deliver-"


class DeliveryError(BubblesError):
    """A batch could not be delivered; ``destination``, ``file`` and ``status`` say where and how."""


@dataclass(frozen=True)
class DeliveryReceipt:
    """What :func:`deliver` did: the batch id, where it went, its manifest, and whether it was already there."""

    batch: str
    destination: str
    manifest: dict[str, Any]
    already_delivered: bool = False
    files: list[str] = field(default_factory=list)


def deliver(files: Iterable[str | os.PathLike[str] | WrittenFile], to: str | os.PathLike[str], *,
            batch: str | None = None, method: str = "post", auth: str | Secret | None = None,
            headers: Mapping[str, str] | None = None, encrypt_to: str | Secret | Sequence[str | Secret] | None = None,
            schema: Any = None, retries: int = 5, timeout: float = 60.0,
            storage_options: dict[str, Any] | None = None, encrypt_key: Any = None) -> DeliveryReceipt:
    """Deliver ``files`` as one batch to an outbox directory, an HTTP(S) service or object storage, once.

    Args:
        files: paths, or the :class:`WrittenFile` list a writer returned (which carries row counts).
        to: a local directory, an ``http(s)://`` endpoint, or an fsspec URL such as ``s3://bucket/outbox``.
        batch: the batch id; default ``sha-<hash>`` of the files' names and contents and of the
            destination, so the same content is delivered once however often the job runs. A batch
            that is already complete at the destination is not sent again; a batch id reused for
            other files or other content is an error.
        method: ``"post"`` (multipart upload to ``to``) or ``"put"`` (to ``<to>/<batch>/<name>``).
        auth: a bearer token, normally a secret reference such as ``"${PARTNER_TOKEN}"``.
        headers: extra HTTP headers; values may reference secrets (``{"X-Api-Key": "${KEY}"}``).
        encrypt_to: the receiver's age public key(s) (``age1...``, or SSH public keys), normally a
            reference such as ``"${PARTNER_AGE_KEY}"``: each file leaves as ``<name>.age``.
        schema: the files' schema for the manifest (a ``pyarrow.Schema``); Parquet files give their own.
        retries: attempts per HTTP request on network errors, 429 and 5xx.
        timeout: seconds per HTTP request.
        storage_options: passed to fsspec for object-storage destinations.
        encrypt_key: no longer supported (bubbles' own AES format); raises, naming ``encrypt_to``.

    Returns:
        A :class:`DeliveryReceipt`; ``already_delivered`` is true when the batch was there before.

    Example:
        >>> import bubbles
        >>> files = bubbles.write_csv(cleaned, "out/orders.csv", FINANCE)  # doctest: +SKIP
        >>> bubbles.deliver(files, to="https://finance.example/api/drops", auth="${FINANCE_TOKEN}")  # doctest: +SKIP
    """
    if encrypt_key is not None:
        raise ConfigError("deliver(encrypt_key=...) is gone: files are now encrypted in the standard age format, which "
                          "the receiver opens with `age -d`. Ask the receiver for its age public key (age-keygen prints "
                          "it) and pass encrypt_to='${PARTNER_AGE_KEY}'.")
    items = _items(files)
    if not items:
        raise ConfigError("deliver() got no files. Pass the paths (or the list a writer returned).")
    if method not in ("post", "put"):
        raise ConfigError(f"deliver(method={method!r}): use 'post' (multipart) or 'put'.")
    keys, key_texts = _age.recipients(encrypt_to) if encrypt_to is not None else (None, [])
    ctx = current_task()
    target = os.fspath(to)
    remove_stale_temp_dirs(tempfile.gettempdir(), _STAGING)  # left by deliveries that were killed
    staging = tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-")
    try:
        sources, entries = [], []
        for path, rows, columns in items:
            local, entry = _describe(path, rows, staging, schema, columns)
            sources.append(local)
            entries.append(entry)
        batch_id = batch or _content_batch(entries, mask(target), key_texts)
        _check_name(batch_id)
        manifest = {
            "batch": batch_id,
            "run_id": ctx.run_id if ctx else None,
            "task": ctx.task if ctx else None,
            "workflow": ctx.workflow if ctx else None,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": entries,
            "rows": sum(e["rows"] for e in entries if e["rows"] is not None),
            "bytes": sum(e["bytes"] for e in entries),
            "encryption": {"format": _age.FORMAT, "recipients": key_texts} if keys else None,
        }
        is_http = target.startswith(("http://", "https://"))
        existing = (_http_manifest(target, batch_id, auth, headers, timeout) if is_http and method == "put"
                    else None if is_http else _stored_manifest(target, batch_id, storage_options))
        if existing is not None:
            _check_same_batch(existing, manifest, mask(target))
            return DeliveryReceipt(batch_id, mask(target), existing, True, [e["name"] for e in existing["files"]])
        payloads = [_seal(local, entry, keys, staging) for local, entry in zip(sources, entries, strict=True)]
        manifest["bytes"] = sum(e["bytes"] for e in entries)
        if is_http:
            _to_http(target, batch_id, payloads, manifest, method, auth, headers, retries, timeout)
        else:
            _to_storage(target, batch_id, payloads, manifest, storage_options)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    lineage.delivered([path for path, _rows, _columns in items], mask(target), batch_id, entries)
    log_metric("files_delivered", len(entries), add=True)
    log_metric("bytes_delivered", manifest["bytes"], add=True)
    return DeliveryReceipt(batch_id, mask(target), manifest, False, [e["name"] for e in entries])


def _items(files: Iterable[str | os.PathLike[str] | WrittenFile]) -> list[tuple[str, int | None, Any]]:
    if isinstance(files, str | os.PathLike | WrittenFile):
        files = [files]
    out: list[tuple[str, int | None, Any]] = []
    for f in files:
        if isinstance(f, WrittenFile):
            out.append((f.path, f.rows, f.schema))
        else:
            out.append((os.fspath(f), None, None))
    names = [os.path.basename(p) for p, _, _ in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"deliver(): several files are named {sorted(dupes)}; a batch is flat, rename them.")
    return out


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _check_name(batch: str) -> None:
    if not batch or "/" in batch or "\\" in batch or batch.startswith("."):
        raise ConfigError(f"deliver(batch={batch!r}): a batch id must be a plain name (no '/' or leading '.').")


def _content_batch(entries: list[dict[str, Any]], destination: str, recipients: list[str]) -> str:
    """The default batch id: the same files (names and plain contents) to the same place map to one batch."""
    h = hashlib.sha256(destination.encode())
    for e in sorted(entries, key=lambda e: e["name"]):
        h.update(f"\0{e['name']}\0{e['plain_sha256']}".encode())
    for r in sorted(recipients):
        h.update(f"\0to:{r}".encode())
    return "sha-" + h.hexdigest()[:20]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _describe(path: str, rows: int | None, staging: str, schema: Any, columns: Any) -> tuple[str, dict[str, Any]]:
    """The file as a local path, and its manifest entry before encryption (name, rows, schema, sha256)."""
    loc = locate(path)
    if not loc.is_local:
        local = os.path.join(staging, "in-" + loc.name)
        loc.fsspec.get_file(loc.path, local)
        path = local
    elif not os.path.isfile(path):
        raise DataError(f"deliver(): {path} is not a file. Pass files written by a writer.", source=path)
    name = os.path.basename(loc.path)
    described = [{"name": n, "type": t} for n, t in columns] if columns and schema is None else None
    entry: dict[str, Any] = {"name": name, "rows": rows, "schema": described or _schema_of(path, schema)}
    if rows is None and name.endswith(".parquet"):
        import pyarrow.parquet as pq

        entry["rows"] = pq.ParquetFile(path).metadata.num_rows
    entry["plain_sha256"] = _sha256(path)
    entry["sha256"] = entry["plain_sha256"]
    entry["bytes"] = os.path.getsize(path)
    return path, entry


def _seal(path: str, entry: dict[str, Any], keys: list[Any] | None, staging: str) -> str:
    """The payload to send: the file itself, or its age-encrypted copy (the entry then describes the copy)."""
    if keys is None:
        del entry["plain_sha256"]  # the same as sha256
        return path
    entry["name"] += _age.SUFFIX
    payload = os.path.join(staging, entry["name"])
    _age.encrypt_file(path, payload, keys)
    entry["bytes"] = os.path.getsize(payload)
    entry["sha256"] = _sha256(payload)
    return payload


def _schema_of(path: str, schema: Any) -> list[dict[str, str]] | None:
    if schema is None and path.endswith(".parquet"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
    if schema is None:
        return None
    return [{"name": f.name, "type": str(f.type)} for f in schema]


# -- destinations ----------------------------------------------------------------------------------------
def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")


def _stored_manifest(target: str, batch: str, storage_options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The manifest of ``batch`` at an outbox or bucket, or None if the batch is not (completely) there."""
    manifest = locate(target, storage_options).join(batch).join(MANIFEST)
    if not manifest.exists():
        return None
    if manifest.is_local:
        with open(manifest.path, "rb") as f:
            return json.loads(f.read())  # type: ignore[no-any-return]
    return json.loads(manifest.fsspec.cat_file(manifest.path))  # type: ignore[no-any-return]


def _to_storage(target: str, batch: str, payloads: Sequence[str], manifest: dict[str, Any],
                storage_options: dict[str, Any] | None) -> None:
    """Outbox directory or object storage: every file, then the manifest (the commit point)."""
    folder = locate(target, storage_options).join(batch)
    for payload, entry in zip(payloads, manifest["files"], strict=True):
        with atomic_file(folder.join(entry["name"])) as tmp:
            shutil.copyfile(payload, tmp)
    step("deliver:files", str(folder))
    with atomic_file(folder.join(MANIFEST)) as tmp, open(tmp, "wb") as f:
        f.write(_manifest_bytes(manifest))
    step("deliver:manifest", str(folder))


def _check_same_batch(existing: dict[str, Any], manifest: dict[str, Any], where: str) -> None:
    """A batch already there must be this batch: the same files with the same contents."""
    def contents(m: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((e["name"].removesuffix(_age.SUFFIX) if m.get("encryption") else e["name"],
                       e.get("plain_sha256") or e["sha256"]) for e in m.get("files", []))

    if contents(existing) != contents(manifest):
        theirs = ", ".join(e["name"] for e in existing.get("files", []))
        raise ConfigError(
            f"deliver(): batch {manifest['batch']!r} was already delivered to {where} with other files or other "
            f"contents ({theirs}). Leave batch= unset (the id then follows the content), or give each deliverable "
            "its own batch id.",
            batch=manifest["batch"],
        )


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:
        raise MissingDependencyError("HTTP deliveries", "httpx and tenacity", "http") from exc
    return httpx


def _http_headers(url: str, auth: str | Secret | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    sent = {k: resolve(v, purpose=f"deliveries to {mask(url)}") for k, v in (headers or {}).items()}
    if auth is not None:
        token = auth.get() if isinstance(auth, Secret) else resolve(auth, purpose=f"deliveries to {mask(url)}")
        sent["Authorization"] = f"Bearer {token}"
    return sent


def _http_manifest(url: str, batch: str, auth: str | Secret | None, headers: Mapping[str, str] | None,
                   timeout: float) -> dict[str, Any] | None:
    """``GET <url>/<batch>/_manifest.json`` of a PUT destination: the manifest if the batch is there."""
    httpx = _httpx()
    where = f"{url.rstrip('/')}/{batch}/{MANIFEST}"
    try:
        response = httpx.get(where, headers=_http_headers(url, auth, headers), timeout=timeout)
    except httpx.TransportError as exc:
        raise DeliveryError(f"Asking {mask(url)} whether batch {batch} is there failed: {type(exc).__name__}: {exc}. "
                            "The receiver may be down; the delivery is retried.", destination=mask(url),
                            transient=True) from None
    if response.status_code != 200:
        return None
    try:
        return response.json()  # type: ignore[no-any-return]
    except ValueError:
        return None


def _to_http(url: str, batch: str, payloads: Sequence[str], manifest: dict[str, Any], method: str,
             auth: str | Secret | None, headers: Mapping[str, str] | None, retries: int, timeout: float) -> None:
    httpx = _httpx()
    try:
        import tenacity
    except ImportError as exc:
        raise MissingDependencyError("HTTP deliveries", "httpx and tenacity", "http") from exc
    sent = _http_headers(url, auth, headers)
    sent["X-Bubbles-Batch"] = batch

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, DeliveryError) and bool(exc.transient)

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(max(1, retries)),
                                 wait=tenacity.wait_exponential(multiplier=0.2, max=10) + tenacity.wait_random(0, 0.2),
                                 retry=tenacity.retry_if_exception(transient), reraise=True)
    with httpx.Client(timeout=timeout, headers=sent) as client:
        uploads = [*zip(payloads, manifest["files"], strict=True), (None, None)]
        for payload, entry in uploads:
            name = entry["name"] if entry else MANIFEST
            for attempt in retrying:
                with attempt:
                    if payload is None:
                        _send(client, httpx, url, batch, name, _manifest_bytes(manifest), "application/json", method)
                    else:
                        with open(payload, "rb") as body:  # streamed from disk, reopened on each attempt
                            _send(client, httpx, url, batch, name, body, "application/octet-stream", method)


def _send(client: Any, httpx: Any, url: str, batch: str, name: str, body: Any, ctype: str, method: str) -> None:
    headers = {"Idempotency-Key": f"{batch}/{name}"}
    where = mask(url)
    try:
        if method == "put":
            response = client.put(f"{url.rstrip('/')}/{batch}/{name}", content=body,
                                  headers={**headers, "Content-Type": ctype})
        else:
            response = client.post(url, files={"file": (name, body, ctype)}, data={"batch": batch}, headers=headers)
    except httpx.TransportError as exc:
        raise DeliveryError(f"Delivering {name} of batch {batch} to {where} failed: {type(exc).__name__}: {exc}. "
                            "The receiver may be down; the delivery is retried.", destination=where, file=name,
                            transient=True) from None
    status = response.status_code
    if status < 300:
        return
    retry = status == 429 or status >= 500
    detail = mask(response.text[:200])
    raise DeliveryError(
        f"Delivering {name} of batch {batch} to {where} failed: HTTP {status} {detail!r}. "
        + ("The receiver is overloaded or failing; the delivery is retried." if retry else
           "Check the URL, the credentials (auth=/headers=) and what the receiver accepts."),
        destination=where, file=name, status=status, transient=retry,
    )
