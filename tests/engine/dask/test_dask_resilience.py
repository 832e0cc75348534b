"""A worker killed mid-run, the scheduler lost, and TLS with self-signed certificates."""

from __future__ import annotations

import datetime
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bubbles import Workflow
from bubbles._errors import ConfigError, RunFailed
from bubbles.engine.executors.dask import DaskConnectionError, SchedulerLost

from .dask_procs import DaskCluster


def nap(i: int) -> int:
    time.sleep(0.4)
    return i * i


def test_worker_killed_mid_run_is_recomputed_elsewhere(address: str, dask_cluster: DaskCluster) -> None:
    with dask_cluster.client() as client:  # type: ignore[attr-defined]
        pids = client.run(os.getpid)  # {worker address: pid}
    victim = sorted(pids.values())[0]
    killer = threading.Timer(0.9, os.kill, (victim, signal.SIGKILL))
    killer.start()
    wf = Workflow("survivor")
    squares = wf.map(nap, list(range(12)), name="naps")
    wf.add_task(sum, requires=[squares], name="total")
    result = wf.run(distributed=True, address=address)
    killer.join()
    assert result.ok
    assert result.tasks["total"].result == sum(i * i for i in range(12))
    assert all(t.attempts == 1 for t in result.tasks.values() if t.group == "naps")  # Dask recomputed, not the runner
    dask_cluster.wait_for_workers(2)  # its nanny starts a new one for the next tests


def test_scheduler_lost_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path / "home"))
    cluster = DaskCluster(tmp_path, workers=1, nanny=False)
    try:
        cluster.wait_for_workers(1)
        killer = threading.Timer(1.0, os.killpg, (cluster.scheduler.pid, signal.SIGKILL))
        killer.start()
        wf = Workflow("orphan")
        wf.map(nap, list(range(20)), name="naps", retries=2, retry_delay=0.01)
        t0 = time.monotonic()
        with pytest.raises(RunFailed) as info:
            wf.run(distributed=True, address=cluster.address)
        assert time.monotonic() - t0 < 30
        result = info.value.result
        assert result.status == "failed"
        errors = [t.error for t in result.tasks.values() if t.state == "failed"]
        assert errors and all(isinstance(e, SchedulerLost) for e in errors)
        assert "lost its connection to the Dask scheduler" in str(errors[0])
        assert all(t.attempts <= 1 for t in result.tasks.values())  # not retried: it cannot help
    finally:
        cluster.stop()


def test_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    wf = Workflow("nowhere")
    wf.add_task(lambda: 1, name="one")
    with pytest.raises(DaskConnectionError, match=rf"127\.0\.0\.1:{port}.*dask scheduler"):
        wf.run(distributed=True, address=f"tcp://127.0.0.1:{port}", connect_timeout=2)


# -- TLS ----------------------------------------------------------------------------------------
def _self_signed(tmp: Path) -> dict[str, str]:
    """A CA and one certificate for 127.0.0.1 signed by it, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bubbles test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": tmp / "ca.pem", "cert": tmp / "node.pem", "key": tmp / "node-key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[DaskCluster, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("tls")
    certs = _self_signed(tmp)
    cluster = DaskCluster(tmp, workers=1, nanny=False, protocol="tls", tls=certs)
    try:
        from distributed import Security

        security = Security(
            tls_ca_file=certs["ca"], tls_client_cert=certs["cert"], tls_client_key=certs["key"], require_encryption=True
        )
        cluster.wait_for_workers(1, security=security)
        yield cluster, certs  # type: ignore[misc]
    finally:
        cluster.stop()


def test_tls_with_certificate_files(
    tls_cluster: tuple[DaskCluster, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, certs = tls_cluster
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path))
    assert cluster.address.startswith("tls://")
    wf = Workflow("secure")
    n = wf.add_task(lambda: list(range(5)), name="n")
    wf.add_task(sum, requires=[n], name="total")
    result = wf.run(
        distributed=True, address=cluster.address, tls_ca_file=certs["ca"], tls_cert=certs["cert"], tls_key=certs["key"]
    )
    assert result.tasks["total"].result == 10
    assert result.tasks["total"].worker.startswith("tls://127.0.0.1:")


def test_tls_from_environment(
    tls_cluster: tuple[DaskCluster, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, certs = tls_cluster
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path))
    monkeypatch.setenv("BUBBLES_DASK_ADDRESS", cluster.address)
    monkeypatch.setenv("BUBBLES_DASK_TLS_CA_FILE", certs["ca"])
    monkeypatch.setenv("BUBBLES_DASK_TLS_CERT", certs["cert"])
    monkeypatch.setenv("BUBBLES_DASK_TLS_KEY", certs["key"])
    wf = Workflow("secure-env")
    wf.map(lambda x: x + 1, [1, 2, 3], name="incs")
    assert wf.run(distributed=True).tasks["incs"].result == [2, 3, 4]


def test_tls_without_certificates_is_a_clear_error(
    tls_cluster: tuple[DaskCluster, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, certs = tls_cluster
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path))
    wf = Workflow("insecure")
    wf.add_task(lambda: 1, name="one")
    with pytest.raises(ConfigError, match="speaks TLS, but no certificates were given"):
        wf.run(distributed=True, address=cluster.address, connect_timeout=3)
    with pytest.raises(ConfigError, match="missing: key"):
        wf.run(distributed=True, address=cluster.address, tls_ca_file=certs["ca"], tls_cert=certs["cert"])
