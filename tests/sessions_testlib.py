"""Helpers of the tests/test_sessions_*.py files: a real redis-server on 127.0.0.1 (the Debian package, installed by
scripts/install.sh), stopped and restarted on the same port for fault tests."""
import shutil
import socket
import subprocess
import time

import portpicker
import pytest


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 (no persistence), on a free port; :meth:`stop` and :meth:`start`
    again keep the port, so clients see it go down and come back."""

    def __init__(self, port: int | None = None):
        binary = shutil.which("redis-server")
        if binary is None:  # CI installs it (scripts/install.sh); a missing binary is a failure, never a skip
            raise RuntimeError("redis-server is not on PATH: run scripts/install.sh (apt-get install redis-server)")
        self.binary, self.port, self.proc = binary, port or portpicker.pick_unused_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 30 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


class FakeClock:
    """A settable clock for expiry tests."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
