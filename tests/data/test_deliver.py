from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

import bubbles
from bubbles._errors import ConfigError, DataError
from bubbles.data.deliver import MANIFEST, DeliveryError, decrypt_file, deliver
from bubbles.data.files import write_csv, write_parquet


@pytest.fixture(scope="module")
def age_key(tmp_path_factory) -> dict[str, str]:
    """A key pair made by the receiver's standard tool, age-keygen (Debian's age package)."""
    assert shutil.which("age-keygen"), "the age CLI is missing: scripts/install-services installs it"
    path = tmp_path_factory.mktemp("age") / "key.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    text = path.read_text()
    public = next(line.split(": ")[1] for line in text.splitlines() if line.startswith("# public key: "))
    return {"file": str(path), "identity": text, "public": public}


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


def test_same_content_is_delivered_once_across_runs(tmp_path, files) -> None:
    def run() -> object:
        wf = bubbles.Workflow("ship")
        wf.add_task(lambda: deliver(files, to=tmp_path / "box"), name="deliver")
        return wf.run(executor="serial").tasks["deliver"].result

    first, second = run(), run()
    assert first.batch == second.batch and first.batch.startswith("sha-")  # type: ignore[attr-defined]
    assert not first.already_delivered and second.already_delivered  # type: ignore[attr-defined]
    assert first.manifest["task"] == "deliver" and os.listdir(tmp_path / "box") == [first.batch]  # type: ignore[attr-defined]
    # a new version of one file is a new batch
    write_csv(pa.table({"id": [9], "country": ["DE"]}), Path(files[0].path))
    third = deliver(files, to=tmp_path / "box")
    assert third.batch != first.batch and not third.already_delivered  # type: ignore[attr-defined]
    # the same content to another destination is delivered there too
    assert not deliver(files, to=tmp_path / "box2").already_delivered


def test_a_kill_before_the_manifest_is_completed_by_the_rerun(tmp_path, files) -> None:
    receipt = deliver(files, to=tmp_path / "box")
    folder = tmp_path / "box" / receipt.batch
    (folder / MANIFEST).unlink()  # as if killed after the files, before the commit point
    (folder / "orders-FR.csv").unlink()
    again = deliver(files, to=tmp_path / "box")
    assert not again.already_delivered and (folder / MANIFEST).exists() and (folder / "orders-FR.csv").exists()
    assert deliver(files, to=tmp_path / "box").already_delivered


def test_reused_batch_id_with_other_content_is_refused(tmp_path, files) -> None:
    deliver(files, to=tmp_path / "box", batch="daily")
    write_csv(pa.table({"id": [9], "country": ["DE"]}), Path(files[0].path))
    with pytest.raises(ConfigError, match="other files or other contents"):
        deliver(files, to=tmp_path / "box", batch="daily")


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
    first = deliver(files, to=http_receiver.url, method="put")
    assert (first.batch, MANIFEST) in http_receiver.files and http_receiver.requests[1]["method"] == "PUT"
    puts = sum(1 for r in http_receiver.requests if r["method"] == "PUT")
    again = deliver(files, to=http_receiver.url, method="put")  # asks for the manifest first: there, so nothing sent
    assert again.already_delivered and again.batch == first.batch
    assert sum(1 for r in http_receiver.requests if r["method"] == "PUT") == puts
    http_receiver.token = "right"
    monkeypatch.setenv("WRONG", "wrong-token")
    with pytest.raises(DeliveryError) as info:
        deliver(files, to=http_receiver.url, batch="b3", auth="${WRONG}", retries=3)
    assert info.value.status == 401 and info.value.transient is False
    assert sum(1 for r in http_receiver.requests if r["path"] == "/drops") == 1  # 401 is not retried


def test_encrypted_delivery_opens_with_the_standard_age_tool(tmp_path, files, age_key, monkeypatch) -> None:
    monkeypatch.setenv("PARTNER_AGE_KEY", age_key["public"])
    receipt = deliver(files, to=tmp_path / "box", batch="enc", encrypt_to="${PARTNER_AGE_KEY}")
    folder = tmp_path / "box" / "enc"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["encryption"] == {"format": "age-encryption.org/v1", "recipients": [age_key["public"]]}
    enc = folder / "orders-DE.csv.age"
    plain = Path(files[0].path).read_bytes()
    assert enc.read_bytes().startswith(b"age-encryption.org/v1\n")  # the standard header, not a private format
    assert plain not in enc.read_bytes()
    # the receiving team's side: the age CLI, nothing from bubbles
    out = subprocess.run(["age", "-d", "-i", age_key["file"], str(enc)], check=True, capture_output=True).stdout
    assert out == plain
    entry = next(e for e in manifest["files"] if e["name"] == "orders-DE.csv.age")
    import hashlib

    assert entry["plain_sha256"] == hashlib.sha256(plain).hexdigest()
    assert entry["sha256"] == hashlib.sha256(enc.read_bytes()).hexdigest()
    # bubbles' own decrypt (and `bubbles decrypt`) read the same files; tampering is detected
    monkeypatch.setenv("DELIVERY_IDENTITY", age_key["identity"])
    decrypt_file(enc, tmp_path / "plain.csv", "${DELIVERY_IDENTITY}")
    assert (tmp_path / "plain.csv").read_bytes() == plain
    data = bytearray(enc.read_bytes())
    data[-1] ^= 1
    enc.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or altered"):
        decrypt_file(enc, tmp_path / "plain2.csv", "${DELIVERY_IDENTITY}")
    assert not (tmp_path / "plain2.csv").exists()
    # the same plain content again is the same batch (age output is random, the batch id is not)
    again = deliver(files, to=tmp_path / "box", encrypt_to="${PARTNER_AGE_KEY}")
    assert again.batch == deliver(files, to=tmp_path / "box", encrypt_to="${PARTNER_AGE_KEY}").batch
    assert receipt.batch == "enc"


def test_bad_keys_and_the_old_option_are_clear_errors(tmp_path, files) -> None:
    with pytest.raises(ConfigError, match="not an age public key"):
        deliver(files, to=tmp_path / "box", encrypt_to="age1nope")
    with pytest.raises(ConfigError, match="encrypt_to="):
        deliver(files, to=tmp_path / "box", encrypt_key="${DELIVERY_KEY}")


def test_staging_folders_of_killed_deliveries_are_removed(tmp_path, files, monkeypatch) -> None:
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    tempfile.tempdir = None
    try:
        proc = subprocess.Popen(["true"])  # its pid is that of a process that has exited
        proc.wait()
        stale = tmp_path / "tmp" / f"bubbles-deliver-{proc.pid}-abcdefgh"
        stale.mkdir()
        live = tmp_path / "tmp" / f"bubbles-deliver-{os.getpid()}-abcdefgh"
        live.mkdir()
        deliver(files, to=tmp_path / "box")
        assert not stale.exists() and live.exists()
        assert sorted(os.listdir(tmp_path / "tmp")) == [live.name]  # its own staging folder is gone too
    finally:
        tempfile.tempdir = None


def test_delivery_to_object_storage(s3, files) -> None:
    url = f"s3://{s3['bucket']}/outbox"
    deliver(files, to=url, batch="r9", storage_options=s3["storage_options"])
    listed = sorted(p.rsplit("/", 1)[-1] for p in s3["fs"].ls(f"{s3['bucket']}/outbox/r9"))
    assert listed == sorted([MANIFEST, "orders-DE.csv", "orders-FR.csv", "orders.parquet"])
    assert deliver(files, to=url, batch="r9", storage_options=s3["storage_options"]).already_delivered
