"""Real Strata processes for the fleet tests: `strata serve --no-worker` and `strata worker`.

Each process gets the test's database through `STRATA_DATABASE_URL`, short lease timings, and
its output in a log file the test can read. `stop_all` kills whatever is left after a test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

FAST_TIMINGS = {
    "STRATA_LEASE_SECONDS": "2",
    "STRATA_HEARTBEAT_SECONDS": "0.4",
    "STRATA_SWEEP_SECONDS": "0.5",
    "STRATA_WORKER_POLL_SECONDS": "1",
    "STRATA_SHUTDOWN_GRACE_SECONDS": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StrataProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {text!r}:\n{self.log()}")
            time.sleep(0.05)


@dataclass
class Fleet:
    database_url: str
    directory: Path
    processes: list[StrataProcess] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> StrataProcess:
        log_path = self.directory / f"{name}.log"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
            "STRATA_DATABASE_URL": self.database_url,
            "STRATA_AUTO_MIGRATE": "false",
            "STRATA_BOOTSTRAP_DEFAULT_TENANT": "false",
            "STRATA_LOG_FORMAT": "json",
            **FAST_TIMINGS,
            **env,
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=self.directory,
            )
        proc = StrataProcess(name=name, process=process, log_path=log_path)
        self.processes.append(proc)
        return proc

    def start_api(self, name: str = "api", **env: str) -> StrataProcess:
        return self._start_serve(name, ["--no-worker"], env)

    def start_server(self, name: str = "server", **env: str) -> StrataProcess:
        """`strata serve`: the API with its in-process worker."""
        return self._start_serve(name, [], env)

    def _start_serve(self, name: str, options: list[str], env: dict[str, str]) -> StrataProcess:
        port = free_port()
        proc = self._spawn(name, ["serve", *options, "--port", str(port)], env)
        proc.port = port
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{proc.base_url}/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx2.TransportError:
                pass
            if proc.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start:\n{proc.log()}")
            time.sleep(0.05)

    def start_worker(self, name: str, **env: str) -> StrataProcess:
        proc = self._spawn(name, ["worker"], env)
        proc.wait_for_log("worker_started")
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.process.poll() is None:
                try:
                    proc.process.send_signal(signal.SIGCONT)
                    proc.process.kill()
                    proc.process.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass


def owner_pid(lease_owner: str | None) -> int | None:
    """The pid inside a worker's lease owner name (`host:pid:nonce`)."""
    if not lease_owner:
        return None
    return int(lease_owner.split(":")[1])


def wait_until(predicate: Any, timeout: float, message: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)
