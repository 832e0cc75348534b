"""Moving Python objects between processes: pickle protocol 5, Arrow data by Arrow IPC.

Large buffers travel out of band (no copy into the pickle stream). Arrow tables and record
batches above ``SPILL_BYTES`` are written once as an Arrow IPC file into a spill directory
(the ``spill_dir`` setting; else ``/dev/shm`` when it exists, i.e. shared memory) and memory-mapped by the receiver, which
unlinks the file as soon as it is mapped: no per-row pickling, no second copy in RAM.

Functions go through cloudpickle, so closures and functions defined in ``__main__`` or in a
script run by ``bubbles run`` reach worker processes; so do objects of classes defined there
(a dataclass of the script), which plain pickle would send by a module name the other side
cannot import.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tempfile
import uuid
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["SPILL_BYTES", "dumps_function", "recv", "send", "spill_dir"]

SPILL_BYTES = 4 * 1024 * 1024
_ARROW_SPILLABLE = ("Table", "RecordBatch")
# modules of scripts (``python etl.py``, ``bubbles run etl.py``): no other process can import them
_SCRIPTS = frozenset({"__main__", "__bubbles__"})


def spill_dir(base: str | None = None) -> str:
    """Directory for spilled Arrow data: ``base`` (the ``spill_dir`` setting), else ``/dev/shm``, else temp."""
    if not base:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    path = os.path.join(base, f"bubbles-spill-{os.getuid() if hasattr(os, 'getuid') else 'u'}")
    os.makedirs(path, exist_ok=True)
    return path


def _load_spilled(path: str) -> Any:
    import pyarrow as pa

    source = pa.memory_map(path)
    try:
        reader = pa.ipc.open_file(source)
        meta = dict(reader.schema.metadata or {})
        kind = meta.pop(b"bubbles.kind", b"Table")
        data = reader.get_batch(0) if kind == b"RecordBatch" else reader.read_all()
    finally:
        os.unlink(path)  # the mapping stays valid; the name is no longer needed
    return data.replace_schema_metadata(meta or None)


def _spill(obj: Any, base: str | None) -> str:
    import pyarrow as pa

    kind = type(obj).__name__
    path = os.path.join(spill_dir(base), f"{os.getpid()}-{uuid.uuid4().hex}.arrow")
    schema = obj.schema.with_metadata({**(obj.schema.metadata or {}), b"bubbles.kind": kind.encode()})
    tmp = path + ".tmp"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        if kind == "Table":
            writer.write_table(obj.replace_schema_metadata(schema.metadata))
        else:
            writer.write_batch(obj.replace_schema_metadata(schema.metadata))
    os.rename(tmp, path)
    return path


class _Pickler(pickle.Pickler):
    def __init__(self, *args: Any, spill: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spill = spill
        self.spilled: list[str] = []  # files this pickle refers to: the receiver unlinks them, or we do on failure

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind.__name__ in _ARROW_SPILLABLE and kind.__module__.startswith("pyarrow"):
            if obj.nbytes >= SPILL_BYTES:
                path = _spill(obj, self.spill)
                self.spilled.append(path)
                return _load_spilled, (path,)
        elif kind.__module__ in _SCRIPTS:  # an object of a class the other side cannot import: by value
            import cloudpickle

            return cloudpickle.loads, (cloudpickle.dumps(obj, protocol=5),)
        return NotImplemented


def _unlink_quietly(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def send(conn: Connection, obj: Any, *, spill: str | None = None) -> None:
    """Send ``obj`` over ``conn``: a header frame, then one frame per out-of-band buffer.

    ``spill`` is where big Arrow data is spilled (the run's ``spill_dir`` setting; default
    ``/dev/shm``).

    Arrow data spilled while pickling is unlinked by the receiver once mapped; if pickling fails
    after a spill (another part of ``obj`` cannot be pickled) or the header never leaves, no
    receiver will see the files, so they are removed here.
    """
    buffers: list[pickle.PickleBuffer] = []
    stream = io.BytesIO()
    stream.write(b"\0\0\0\0")
    pickler = _Pickler(stream, protocol=5, buffer_callback=buffers.append, spill=spill)
    try:
        pickler.dump(obj)
        view = stream.getbuffer()
        struct.pack_into("<I", view, 0, len(buffers))
        conn.send_bytes(view)
    except BaseException:
        _unlink_quietly(pickler.spilled)
        raise
    del view
    for buf in buffers:
        conn.send_bytes(buf.raw())


def recv(conn: Connection) -> Any:
    """Receive one object sent by :func:`send`."""
    head = conn.recv_bytes()
    (count,) = struct.unpack_from("<I", head, 0)
    buffers = [conn.recv_bytes() for _ in range(count)]
    return pickle.loads(memoryview(head)[4:], buffers=buffers)


def dumps_function(fn: Any) -> bytes:
    """Pickle a task function with cloudpickle (by value when it is not importable)."""
    import cloudpickle

    return cloudpickle.dumps(fn, protocol=5)
