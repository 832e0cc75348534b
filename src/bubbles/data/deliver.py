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

Re-delivering the same batch does not duplicate: the batch id is the run id (or given, or the
content hash), an outbox or bucket that already holds the batch's manifest is left alone, PUTs
overwrite the same URLs, and every POST carries an ``Idempotency-Key`` of batch and file name.

With ``encrypt_key="${NAME}"`` (a base64 32-byte key from the secrets) each file is encrypted
with AES-256-GCM in 1 MiB authenticated chunks (file suffix ``.enc``); :func:`decrypt_file`
is the receiver's side.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as _secrets
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._context import current_task, log_metric
from .._errors import BubblesError, ConfigError, DataError, MissingDependencyError
from .._secrets import Secret, mask, resolve
from .files._atomic import atomic_file
from .files._common import WrittenFile
from .files._fs import locate

__all__ = ["DeliveryError", "DeliveryReceipt", "decrypt_file", "deliver"]

MANIFEST = "_manifest.json"
_MAGIC = b"BBLENC1\n"
_CHUNK = 1 << 20


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
            headers: Mapping[str, str] | None = None, encrypt_key: str | Secret | None = None,
            schema: Any = None, retries: int = 5, timeout: float = 60.0,
            storage_options: dict[str, Any] | None = None) -> DeliveryReceipt:
    """Deliver ``files`` as one batch to an outbox directory, an HTTP(S) service or object storage.

    Args:
        files: paths, or the :class:`WrittenFile` list a writer returned (which carries row counts).
        to: a local directory, an ``http(s)://`` endpoint, or an fsspec URL such as ``s3://bucket/outbox``.
        batch: the batch id; default ``<run id>-<task>`` inside a task, else a hash of the files' contents.
            A batch that is already complete at the destination is not sent again (same files
            required: a batch id reused for other files is an error).
        method: ``"post"`` (multipart upload to ``to``) or ``"put"`` (to ``<to>/<batch>/<name>``).
        auth: a bearer token, normally a secret reference such as ``"${PARTNER_TOKEN}"``.
        headers: extra HTTP headers; values may reference secrets (``{"X-Api-Key": "${KEY}"}``).
        encrypt_key: base64 AES-256 key (a secret reference) to encrypt each file before it leaves.
        schema: the files' schema for the manifest (a ``pyarrow.Schema``); Parquet files give their own.
        retries: attempts per HTTP request on network errors, 429 and 5xx.
        timeout: seconds per HTTP request.
        storage_options: passed to fsspec for object-storage destinations.

    Returns:
        A :class:`DeliveryReceipt`; ``already_delivered`` is true when the batch was there before.

    Example:
        >>> import bubbles
        >>> files = bubbles.write_csv(cleaned, "out/orders.csv", FINANCE)  # doctest: +SKIP
        >>> bubbles.deliver(files, to="https://finance.example/api/drops", auth="${FINANCE_TOKEN}")  # doctest: +SKIP
    """
    items = _items(files)
    if not items:
        raise ConfigError("deliver() got no files. Pass the paths (or the list a writer returned).")
    if method not in ("post", "put"):
        raise ConfigError(f"deliver(method={method!r}): use 'post' (multipart) or 'put'.")
    key = _key(encrypt_key) if encrypt_key is not None else None
    ctx = current_task()
    staging = tempfile.mkdtemp(prefix="bubbles-deliver-")
    try:
        entries, payloads = [], []
        for path, rows, columns in items:
            payload, entry = _prepare(path, rows, key, staging, schema, columns)
            entries.append(entry)
            payloads.append(payload)
        batch_id = batch or (_safe_name(f"{ctx.run_id}-{ctx.task}") if ctx else "sha-" + hashlib.sha256(
            "".join(e.get("plain_sha256", e["sha256"]) for e in entries).encode()).hexdigest()[:16])
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
            "encryption": {"algorithm": "AES-256-GCM", "chunk_bytes": _CHUNK, "format": "bubbles-enc-1"} if key else None,
        }
        target = os.fspath(to)
        if target.startswith(("http://", "https://")):
            done = _to_http(target, batch_id, payloads, manifest, method, auth, headers, retries, timeout)
        else:
            done = _to_storage(target, batch_id, payloads, manifest, storage_options)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not done:
        log_metric("files_delivered", len(entries), add=True)
        log_metric("bytes_delivered", manifest["bytes"], add=True)
    return DeliveryReceipt(batch_id, mask(target), manifest, done, [e["name"] for e in entries])


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


def _key(value: str | Secret) -> bytes:
    text = value.get() if isinstance(value, Secret) else resolve(value, purpose="encrypting deliveries")
    try:
        key = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        key = b""
    if len(key) != 32:
        raise ConfigError("deliver(encrypt_key=...): the key must be 32 random bytes, base64-encoded (e.g. "
                          "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`).")
    return key


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _prepare(path: str, rows: int | None, key: bytes | None, staging: str, schema: Any,
             columns: Any) -> tuple[str, dict[str, Any]]:
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
    payload = path
    if key is not None:
        entry["plain_sha256"] = _sha256(path)
        entry["name"] = name + ".enc"
        payload = os.path.join(staging, entry["name"])
        _encrypt(path, payload, key)
    entry["bytes"] = os.path.getsize(payload)
    entry["sha256"] = _sha256(payload)
    return payload, entry


def _schema_of(path: str, schema: Any) -> list[dict[str, str]] | None:
    if schema is None and path.endswith(".parquet"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
    if schema is None:
        return None
    return [{"name": f.name, "type": str(f.type)} for f in schema]


# -- encryption ------------------------------------------------------------------------------------------
def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("encrypted deliveries", "cryptography", "crypto") from exc
    return AESGCM(key)


def _encrypt(src: str, dst: str, key: bytes) -> None:
    """Chunked AES-256-GCM: a random 8-byte prefix + chunk counter as nonce; the last chunk is marked in
    the associated data, so truncation, reordering and tampering all fail authentication."""
    aes = _aesgcm(key)
    prefix = _secrets.token_bytes(8)
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(_MAGIC + prefix)
        index = 0
        chunk = f.read(_CHUNK)
        while True:
            following = f.read(_CHUNK)
            last = not following
            nonce = prefix + struct.pack(">I", index)
            sealed = aes.encrypt(nonce, chunk, struct.pack(">I?", index, last))
            out.write(struct.pack(">I", len(sealed)) + sealed)
            if last:
                break
            chunk, index = following, index + 1


def decrypt_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], key: str | bytes | Secret) -> None:
    """Decrypt a file encrypted by :func:`deliver` (the receiving side). Raises DataError if tampered.

    Example:
        >>> from bubbles.data.deliver import decrypt_file
        >>> decrypt_file("orders.csv.enc", "orders.csv", "${DELIVERY_KEY}")  # doctest: +SKIP
    """
    raw = key if isinstance(key, bytes) else _key(key)
    aes = _aesgcm(raw)
    from cryptography.exceptions import InvalidTag

    src, dst = os.fspath(src), os.fspath(dst)
    with open(src, "rb") as f, atomic_file(locate(dst)) as tmp, open(tmp, "wb") as out:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise DataError(f"{src} is not a file encrypted by bubbles deliver().", source=src)
        prefix = f.read(8)
        index, last = 0, False
        while not last:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{src} is truncated: the last chunk is missing.", source=src)
            (size,) = struct.unpack(">I", head)
            sealed = f.read(size)
            nonce = prefix + struct.pack(">I", index)
            for last in (False, True):
                try:
                    out.write(aes.decrypt(nonce, sealed, struct.pack(">I?", index, last)))
                    break
                except InvalidTag:
                    continue
            else:
                raise DataError(f"{src}: chunk {index} fails authentication (wrong key, or the file was altered).",
                                source=src)
            index += 1
        if f.read(1):
            raise DataError(f"{src} has data after its last chunk: the file was altered.", source=src)


# -- destinations ----------------------------------------------------------------------------------------
def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")


def _to_storage(target: str, batch: str, payloads: Sequence[str], manifest: dict[str, Any],
                storage_options: dict[str, Any] | None) -> bool:
    """Outbox directory or object storage. Returns True when the batch was already delivered."""
    base = locate(target, storage_options)
    folder = base.join(batch)
    if folder.join(MANIFEST).exists():
        _check_same_batch(folder, manifest)
        return True
    for payload, entry in zip(payloads, manifest["files"], strict=True):
        with atomic_file(folder.join(entry["name"])) as tmp:
            shutil.copyfile(payload, tmp)
    with atomic_file(folder.join(MANIFEST)) as tmp, open(tmp, "wb") as f:
        f.write(_manifest_bytes(manifest))
    return False


def _check_same_batch(folder: Any, manifest: dict[str, Any]) -> None:
    """A batch already there must be this batch: the same files. Otherwise two deliverables share an id."""
    if folder.is_local:
        with open(folder.join(MANIFEST).path, "rb") as f:
            existing = json.loads(f.read())
    else:
        existing = json.loads(folder.fsspec.cat_file(folder.join(MANIFEST).path))
    ours = sorted(e["name"] for e in manifest["files"])
    theirs = sorted(e["name"] for e in existing.get("files", []))
    if ours != theirs:
        raise ConfigError(
            f"deliver(): batch {manifest['batch']!r} was already delivered to {mask(str(folder))} with other files "
            f"({', '.join(theirs)}), not {', '.join(ours)}. Give each deliverable its own batch id (batch=...).",
            batch=manifest["batch"],
        )


def _to_http(url: str, batch: str, payloads: Sequence[str], manifest: dict[str, Any], method: str,
             auth: str | Secret | None, headers: Mapping[str, str] | None, retries: int, timeout: float) -> bool:
    try:
        import httpx
        import tenacity
    except ImportError as exc:
        raise MissingDependencyError("HTTP deliveries", "httpx and tenacity", "http") from exc
    sent = {k: resolve(v, purpose=f"deliveries to {mask(url)}") for k, v in (headers or {}).items()}
    if auth is not None:
        token = auth.get() if isinstance(auth, Secret) else resolve(auth, purpose=f"deliveries to {mask(url)}")
        sent["Authorization"] = f"Bearer {token}"
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
    return False


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
