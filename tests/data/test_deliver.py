from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

import bubbles
from bubbles._errors import ConfigError, DataError
from bubbles.data.deliver import MANIFEST, DeliveryError, decrypt_file, deliver
from bubbles.data.files import write_csv, write_parquet

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def files(tmp_path):
    t = pa.table({"id": [1, 2, 3], "country": ["DE", "FR", "DE"]})
    out = write_csv(t, tmp_path / "out" / "orders.csv", split_by="country")
    out += write_parquet(t, tmp_path / "out" / "orders.parquet")
    return out


def test_outbox_with_manifest_last_and_no_duplicates(tmp_path, files) -> None:
    outbox = tmp_path / "outbox"
    receipt = deliver(files, to=outbox, batch="run-1")
    folder = outbox / "run-1"
    assert sorted(os.listdir(folder)) == sorted([MANIFEST, "orders-DE.csv", "orders-FR.csv", "orders.parquet"])
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["rows"] == 6 and manifest["batch"] == "run-1"
    parquet = next(f for f in manifest["files"] if f["name"] == "orders.parquet")
    assert parquet["rows"] == 3 and parquet["schema"][0] == {"name": "id", "type": "int64"}
    csv_entry = next(f for f in manifest["files"] if f["name"] == "orders-DE.csv")
    assert csv_entry["rows"] == 2 and csv_entry["schema"] == [{"name": "id", "type": "int64"},
                                                              {"name": "country", "type": "string"}]
    import hashlib

    assert parquet["sha256"] == hashlib.sha256((folder / "orders.parquet").read_bytes()).hexdigest()
    assert not receipt.already_delivered
    again = deliver(files, to=outbox, batch="run-1")
    assert again.already_delivered and sorted(os.listdir(outbox)) == ["run-1"]
    with pytest.raises(ConfigError, match="other files"):
        deliver(files[:1], to=outbox, batch="run-1")


def test_batch_defaults_to_run_id_inside_a_task(tmp_path, files) -> None:
    wf = bubbles.Workflow("ship")
    wf.add_task(lambda: deliver(files, to=tmp_path / "box"), name="deliver")
    result = wf.run(executor="serial")
    receipt = result.tasks["deliver"].result
    assert receipt.batch == f"{result.run_id}-deliver" and receipt.manifest["task"] == "deliver"
    # outside a run, the id is the content hash: the same files map to the same batch
    assert deliver(files, to=tmp_path / "b2").batch == deliver(files, to=tmp_path / "b2").batch


def test_http_post_with_auth_retries_and_manifest_last(http_receiver, files, monkeypatch) -> None:
    monkeypatch.setenv("PARTNER_TOKEN", "s3cr3t-token")
    http_receiver.token = "s3cr3t-token"
    http_receiver.fail_next = 2
    receipt = deliver(files, to=http_receiver.url, batch="b1", auth="${PARTNER_TOKEN}", retries=4)
    names = [n for (_b, n) in http_receiver.files]
    assert names[-1] == MANIFEST and len(names) == 4
    assert http_receiver.files[("b1", "orders-DE.csv")] == Path(files[0].path).read_bytes()
    assert http_receiver.requests[-1]["headers"]["Idempotency-Key"] == f"b1/{MANIFEST}"
    assert "s3cr3t-token" not in repr(receipt)
    deliver(files, to=http_receiver.url, batch="b1", auth="${PARTNER_TOKEN}")
    assert len(http_receiver.files) == 4  # same batch again: replaced, not duplicated


def test_http_put_and_permanent_errors(http_receiver, files, monkeypatch) -> None:
    deliver(files, to=http_receiver.url, batch="b2", method="put")
    assert ("b2", MANIFEST) in http_receiver.files and http_receiver.requests[0]["method"] == "PUT"
    http_receiver.token = "right"
    monkeypatch.setenv("WRONG", "wrong-token")
    with pytest.raises(DeliveryError) as info:
        deliver(files, to=http_receiver.url, batch="b3", auth="${WRONG}", retries=3)
    assert info.value.status == 401 and info.value.transient is False
    assert sum(1 for r in http_receiver.requests if r["path"] == "/drops") == 1  # 401 is not retried


def test_encrypted_delivery_roundtrip_and_tamper(tmp_path, files, monkeypatch) -> None:
    monkeypatch.setenv("DELIVERY_KEY", KEY)
    deliver(files, to=tmp_path / "box", batch="enc", encrypt_key="${DELIVERY_KEY}")
    folder = tmp_path / "box" / "enc"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"
    enc = folder / "orders-DE.csv.enc"
    assert b"DE" not in enc.read_bytes()[16:]
    decrypt_file(enc, tmp_path / "plain.csv", "${DELIVERY_KEY}")
    assert (tmp_path / "plain.csv").read_bytes() == Path(files[0].path).read_bytes()
    data = bytearray(enc.read_bytes())
    data[-1] ^= 1
    enc.write_bytes(bytes(data))
    with pytest.raises(DataError, match="authentication"):
        decrypt_file(enc, tmp_path / "plain2.csv", "${DELIVERY_KEY}")
    assert not (tmp_path / "plain2.csv").exists()
    with pytest.raises(ConfigError, match="32 random bytes"):
        deliver(files, to=tmp_path / "box", encrypt_key=base64.b64encode(b"short").decode())


def test_delivery_to_object_storage(s3, files) -> None:
    url = f"s3://{s3['bucket']}/outbox"
    deliver(files, to=url, batch="r9", storage_options=s3["storage_options"])
    listed = sorted(p.rsplit("/", 1)[-1] for p in s3["fs"].ls(f"{s3['bucket']}/outbox/r9"))
    assert listed == sorted([MANIFEST, "orders-DE.csv", "orders-FR.csv", "orders.parquet"])
    assert deliver(files, to=url, batch="r9", storage_options=s3["storage_options"]).already_delivered
