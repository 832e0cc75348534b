"""Object storage paths, against a real S3 API (moto server on 127.0.0.1)."""

from __future__ import annotations

import pyarrow as pa

from bubbles.data.files import read_csv, read_parquet, write_csv, write_parquet


def test_csv_and_parquet_on_s3(s3) -> None:
    bucket, opts = s3["bucket"], s3["storage_options"]
    t = pa.table({"id": [1, 2, 3], "country": ["DE", "FR", "DE"]})
    (f,) = write_csv(t, f"s3://{bucket}/out/o.csv.gz", storage_options=opts)
    assert f.rows == 3 and s3["fs"].exists(f"{bucket}/out/o.csv.gz")
    assert read_csv(f"s3://{bucket}/out/o.csv.gz", storage_options=opts).equals(t)
    write_parquet(t, f"s3://{bucket}/lake", partition_by=["country"], storage_options=opts)
    assert sorted(s3["fs"].ls(f"{bucket}/lake")) == [f"{bucket}/lake/_bubbles_set.json", f"{bucket}/lake/country=DE",
                                                     f"{bucket}/lake/country=FR"]
    de = read_parquet(f"s3://{bucket}/lake", filters=[("country", "=", "DE")], storage_options=opts)
    assert de.column("id").to_pylist() == [1, 3]
    stream = read_csv(f"s3://{bucket}/out/o.csv.gz", batch_size=2, storage_options=opts)
    assert sum(b.num_rows for b in stream) == 3


def test_a_dataset_on_s3_is_replaced_through_its_set_object(s3) -> None:
    bucket, opts = s3["bucket"], s3["storage_options"]
    url = f"s3://{bucket}/lake"
    write_parquet(pa.table({"id": [1, 2], "k": ["a", "b"]}), url, partition_by=["k"], storage_options=opts)
    # a write killed after its uploads, before its set object: files no set lists
    s3["fs"].put_file(__file__, f"{bucket}/lake/k=a/part-killed-0.parquet")
    assert sorted(read_parquet(url, storage_options=opts).column("id").to_pylist()) == [1, 2]  # not read
    write_parquet(pa.table({"id": [3], "k": ["c"]}), url, partition_by=["k"], storage_options=opts)
    assert read_parquet(url, storage_options=opts).column("id").to_pylist() == [3]
    left = sorted(p.rsplit("/lake/", 1)[1] for p in s3["fs"].find(f"{bucket}/lake"))
    assert left[0] == "_bubbles_set.json" and len(left) == 2 and left[1].startswith("k=c/")  # old set and orphan gone
    write_parquet(pa.table({"id": [4], "k": ["c"]}), url, partition_by=["k"], mode="append", storage_options=opts)
    assert sorted(read_parquet(url, storage_options=opts).column("id").to_pylist()) == [3, 4]
