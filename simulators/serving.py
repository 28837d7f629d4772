"""Run an ASGI simulator on a loopback port inside the current process or as a subprocess.

Tests, the demo and the benchmarks all need a real HTTP server on 127.0.0.1; this module is the
one place that knows how to start and stop one with uvicorn.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn


class DropConnection(Exception):
    """Raised inside a simulator's ASGI app so uvicorn closes the socket without a complete response."""


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DropConnection)


def hide_drop_tracebacks() -> None:
    """Keep uvicorn from logging a traceback for every deliberately dropped connection (idempotent)."""
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDrops) for f in error_logger.filters):
        error_logger.addFilter(_HideDrops())


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(host: str, port: int, timeout: float = 20.0) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


@dataclass
class ThreadServer:
    """A uvicorn server running an ASGI app in a daemon thread of this process."""

    app: Any
    port: int = 0
    host: str = "127.0.0.1"
    _server: uvicorn.Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadServer:
        if self._thread is not None:
            return self
        if not self.port:
            self.port = free_port()
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            access_log=False, timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sim:{self.port}", daemon=True)
        self._thread.start()
        wait_until_listening(self.host, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ThreadServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ProcessServer:
    """A simulator started as `python -m <module> --port N [args]` in its own process.

    Used where the server must not share the GIL with the code being measured (benchmarks) or
    must outlive a killed client (crash tests).
    """

    module: str
    args: list[str] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"
    env: dict[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ProcessServer:
        if self._proc is not None and self._proc.poll() is None:
            return self  # already running (e.g. `with server.start() as s:`)
        if not self.port:
            self.port = free_port()
        cmd = [sys.executable, "-m", self.module, "--host", self.host, "--port", str(self.port), *self.args]
        env = {**os.environ, **(self.env or {})}
        self._proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with code {self._proc.returncode} before listening")
            try:
                httpx.get(f"{self.url}/_admin/health", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.module} did not answer on {self.url} within {timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def __enter__(self) -> ProcessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
