"""A real HAProxy (Debian's ``haproxy``) on loopback in front of service instances.

It round-robins HTTP between the given backend ports and health-checks each on ``GET /ready``
(a server is taken out after ``FALL`` failed checks ``CHECK_MS`` apart, put back after
``RISE`` good ones). ``retries 0``: like kube-proxy in front of a Kubernetes Service, it does
not retry, so a connection the server refuses is a failed request (HAProxy's default, 3
retries a second apart on the same server, would hide a refusal while a fast replacement
starts). The config and the admin socket live in a temporary directory;
:meth:`HAProxy.stop` ends the process.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

CHECK_MS = 200
FALL = 2
RISE = 2
BACKEND = "service"


def haproxy_binary() -> str:
    """The ``haproxy`` executable (in /usr/sbin, which a non-root PATH may lack)."""
    found = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if found is None:
        pytest.fail("haproxy is not installed (make system-deps)")
    return found


def config(port: int, backends: dict[str, int], admin_socket: Path) -> str:
    servers = "\n".join(
        f"  server {name} 127.0.0.1:{backend} check" for name, backend in backends.items()
    )
    return f"""global
  maxconn 512
  stats socket {admin_socket} mode 600 level admin

defaults
  mode http
  timeout connect 2s
  retries 0
  timeout client 30s
  timeout server 30s

frontend front
  bind 127.0.0.1:{port}
  default_backend {BACKEND}

backend {BACKEND}
  balance roundrobin
  option httpchk
  http-check send meth GET uri /ready
  http-check expect status 200
  default-server inter {CHECK_MS}ms fall {FALL} rise {RISE}
{servers}
"""


class HAProxy:
    """``haproxy -db`` (foreground) with :func:`config`; its servers' states on request."""

    def __init__(self, directory: Path, port: int, backends: dict[str, int]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.admin_socket = directory / "admin.sock"
        path = directory / "haproxy.cfg"
        path.write_text(config(port, backends, self.admin_socket), encoding="utf-8")
        binary = haproxy_binary()
        checked = subprocess.run(
            [binary, "-c", "-f", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.log_path = directory / "haproxy.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT
            )

    def command(self, line: str) -> str:
        """Send one command to the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.settimeout(5)
            admin.connect(str(self.admin_socket))
            admin.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := admin.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each backend server's status as HAProxy sees it (``UP``, ``DOWN``, ...)."""
        rows = csv.DictReader(self.command("show stat").lstrip("# ").splitlines())
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def wait_for(self, server: str, status: str, timeout: float = 30.0) -> float:
        """Wait until ``server`` has ``status``; the seconds it took."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log_path.read_text()}")
            if self.admin_socket.exists() and self.states().get(server, "").startswith(status):
                return time.perf_counter() - started
            time.sleep(0.05)
        raise RuntimeError(f"{server} not {status} within {timeout}s: {self.states()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
