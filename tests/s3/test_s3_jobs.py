"""A job whose paths are S3 prefixes: ``snapfs jobs run`` backs the bucket up through the S3
source (its own endpoint, ``source-endpoint``), and forget keeps by those prefixes."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from snapfs.repository import Repository
from snapfs.store.url import open_backend
from tests.conftest import CHEAP_KDF, PASSWORD, SNAPFS
from tests.s3.conftest import SOURCE_BUCKET
from tests.s3.seaweed import SeaweedFS, put_objects


def test_a_job_backs_up_an_s3_prefix(source_server: SeaweedFS, tmp_path: Path) -> None:
    prefix = f"job-{uuid.uuid4().hex[:8]}"
    objects = {f"{prefix}/d{i % 3}/part-{i}.json": f'{{"n": {i}}}\n'.encode() for i in range(12)}
    put_objects(source_server.client(), SOURCE_BUCKET, objects)
    Repository.init(open_backend(str(tmp_path / "repo")), PASSWORD, kdf=CHEAP_KDF).close()
    (tmp_path / "pass").write_text(PASSWORD)
    conf = tmp_path / "snapfs.toml"
    conf.write_text(
        '[repositories.main]\nurl = "repo"\npassword-file = "pass"\n'
        f'[jobs.bucket]\nrepository = "main"\npaths = ["s3://{SOURCE_BUCKET}/{prefix}"]\n'
        f'source-endpoint = "{source_server.endpoint}"\nkeep = {{ last = 1 }}\n'
        '[daemon]\nstate-dir = "state"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPFS_", "AWS_"))}
    env |= {k: v for k, v in source_server.env().items() if k != "AWS_ENDPOINT_URL"}
    for _ in range(2):
        done = subprocess.run([*SNAPFS, "--config", str(conf), "jobs", "run", "bucket", "--json"],
                              capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert done.stderr.splitlines()[0].endswith(": 12 files, 0 bytes added")  # unchanged
    listed = subprocess.run([*SNAPFS, "-r", str(tmp_path / "repo"), "snapshots", "--json"],
                            env={**env, "SNAPFS_PASSWORD": PASSWORD}, capture_output=True,
                            check=True)  # fmt: skip
    (snap,) = json.loads(listed.stdout)  # keep.last = 1 of this prefix's snapshots
    assert (snap["id"], snap["paths"]) == (run["snapshot"], [f"s3://{SOURCE_BUCKET}/{prefix}"])
    out = tmp_path / "out"
    subprocess.run([*SNAPFS, "-r", str(tmp_path / "repo"), "restore", "latest", "--target",
                    str(out)], env={**env, "SNAPFS_PASSWORD": PASSWORD}, check=True)  # fmt: skip
    files = [p for p in out.rglob("*") if p.is_file()]
    restored = {str(p.relative_to(out / SOURCE_BUCKET)): p.read_bytes() for p in files}
    assert restored == objects
