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
    assert sorted(s3["fs"].ls(f"{bucket}/lake")) == [f"{bucket}/lake/country=DE", f"{bucket}/lake/country=FR"]
    de = read_parquet(f"s3://{bucket}/lake", filters=[("country", "=", "DE")], storage_options=opts)
    assert de.column("id").to_pylist() == [1, 3]
    stream = read_csv(f"s3://{bucket}/out/o.csv.gz", batch_size=2, storage_options=opts)
    assert sum(b.num_rows for b in stream) == 3
