"""Child processes that never outlive the launcher, and a supervisor that restarts crashed ones."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


class ComponentError(RuntimeError):
    """A component did not start or become ready; the message carries its log tail."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the launcher is SIGKILLed, the kernel
    # sends SIGTERM to this child, so no broker or database is left behind.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this very process when its parent dies (launcher safety net)."""
    _die_with_parent()


class ManagedProcess:
    """One child process in its own process group, with its output in a log file.

    `stop()` sends `stop_signal` to the leader and escalates to SIGKILL for the whole group;
    `kill()`, `pause()` and `resume()` signal the whole group (SIGKILL, SIGSTOP, SIGCONT).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            kwargs: dict[str, Any] = {}
            if self.user is not None:
                kwargs["user"] = self.user
            self.popen = subprocess.Popen(  # noqa: S603 - argv is built by this package
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                # The kernel ties the death signal to the spawning *thread*: only the main
                # thread lives as long as the launcher, elsewhere rely on stop()/atexit.
                preexec_fn=_die_with_parent if _in_main_thread() else None,
                **kwargs,
            )
        with _live_lock:
            _live.add(self)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def pause(self) -> None:
        """SIGSTOP the whole group: the process hangs, its sockets stay open (a hung peer)."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole group, no shutdown handlers run (a crash)."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGCONT)
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._forget()

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop, then SIGKILL for anything left in the group."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGCONT)  # a paused process cannot handle the stop signal
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # leftovers (for example postgres backends) share the group
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-16_000:]
    except OSError:
        return "(no log)"
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def stop_all() -> None:
    """Stop every process this interpreter started (atexit and signal handlers)."""
    with _live_lock:
        procs = list(_live)
    for proc in reversed(procs):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)


atexit.register(stop_all)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    for family, addr in ((socket.AF_INET, host), (socket.AF_INET, "0.0.0.0")):  # noqa: S104
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # like the servers themselves: a TIME_WAIT left by the last run is no obstacle
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((addr, port))
            except OSError:
                return False
    return True


_port_range: range | None = None
_port_turn = 0
_port_lock = threading.Lock()


def use_port_range(ports: range) -> None:
    """From now on this process's `free_port()` hands out the free ports of `ports` in turn.

    For parallel test workers, each with a range of its own below the kernel's ephemeral range:
    a port one worker picked but has not bound yet (a service's reserved port) is then never
    picked by another worker nor taken by an outgoing connection. Child processes keep the
    kernel's choice (they do not inherit this)."""
    global _port_range, _port_turn
    with _port_lock:
        _port_range, _port_turn = ports, os.getpid() % len(ports)


def free_port() -> int:
    if _port_range is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    global _port_turn
    with _port_lock:
        for _ in range(len(_port_range)):
            port = _port_range[_port_turn % len(_port_range)]
            _port_turn += 1
            if port_is_free(port):
                return port
    raise ComponentError(f"no free port left in {_port_range}")


def pick_port(preferred: int | None) -> int:
    """The preferred port when it is free (stable URLs for `make run`), else any free port."""
    if preferred and port_is_free(preferred):
        return preferred
    return free_port()


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: ManagedProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `check` until it returns True; fail early with the log tail if `proc` exits."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
            raise ComponentError(
                f"{what}: process exited with code {proc.popen.returncode} before it was ready.\n"
                f"log {proc.log_path}:\n{proc.log_tail()}"
            )
        try:
            if check():
                return
        except Exception as exc:  # any failed probe means "not yet"
            last_error = exc
        time.sleep(interval)
    tail = f"\nlog {proc.log_path}:\n{proc.log_tail()}" if proc else ""
    raise ComponentError(
        f"{what}: not ready after {timeout:.0f}s (last probe error: {last_error!r}){tail}"
    )


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.create_connection((host, port), timeout=timeout):
        return True


def run_async(factory: Callable[[], Any], timeout: float | None = 120) -> Any:
    """Run a coroutine on a private event loop in a worker thread.

    Sync fixtures and the CLI call async clients (asyncpg, aiokafka) through this, so they
    never touch the event loop that pytest-asyncio keeps for the session.
    """
    import asyncio

    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="devstack-async", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError("async helper did not finish in time")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _exit_code(child: Any) -> int | None:
    proc = getattr(child, "proc", None)
    return proc.poll() if isinstance(proc, ManagedProcess) else None


@dataclass
class _Watch:
    state: str = "up"  # up | waiting (to restart) | starting (restarted, not ready yet)
    restarts: int = 0  # consecutive: reset once the child stayed up for `stable_seconds`
    total_restarts: int = 0
    restart_at: float = 0.0
    up_since: float = 0.0
    last_exit: int | None = None


class Supervisor:
    """Restarts crashed children (`ServiceProcess`-like: `name`, `log_path`, `running`,
    `start(wait=False)`, `is_ready()`) with bounded exponential backoff, like compose's
    `restart: unless-stopped` (a stop asked for by the launcher is never undone).

    The first restart comes after `first_delay` seconds, each further one after twice the last,
    at most `max_delay`; a child that stays up `stable_seconds` starts again from `first_delay`.
    Call `tick()` from the launcher's loop; `report(kind, name, message)` is told everything.
    """

    def __init__(
        self,
        children: list[Any],
        *,
        report: Callable[[str, str, str], None],
        first_delay: float = 0.2,
        max_delay: float = 30.0,
        stable_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = children
        self.report = report
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_seconds = stable_seconds
        self.clock = clock
        now = clock()
        self.watches: dict[str, _Watch] = {c.name: _Watch(up_since=now) for c in children}

    def delay_for(self, restart_number: int) -> float:
        """Seconds before the n-th consecutive restart (1-based)."""
        return float(min(self.max_delay, self.first_delay * 2 ** (restart_number - 1)))

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            c.name: {
                "state": w.state,
                "restarts": w.total_restarts,
                "last_exit_code": w.last_exit,
            }
            for c in self.children
            for w in (self.watches[c.name],)
        }

    def _log(self, child: Any, line: str) -> None:
        with contextlib.suppress(OSError), open(child.log_path, "a") as log:
            log.write(f"\n--- {time.strftime('%H:%M:%S')} supervisor: {line}\n")

    def tick(self) -> bool:
        """One look at every child; True when some child changed state."""
        now = self.clock()
        changed = False
        for child in self.children:
            watch = self.watches[child.name]
            if watch.state in ("up", "starting") and not child.running:
                watch.last_exit = _exit_code(child)
                watch.restarts += 1
                delay = self.delay_for(watch.restarts)
                watch.state, watch.restart_at = "waiting", now + delay
                message = (
                    f"exited (code {watch.last_exit}); restart {watch.restarts} in {delay:.1f}s"
                )
                self._log(child, message)
                self.report("crashed", child.name, message)
                changed = True
            elif watch.state == "waiting" and now >= watch.restart_at:
                watch.total_restarts += 1
                self._log(child, f"restarting (restart {watch.restarts})")
                child.start(wait=False)
                watch.state = "starting"
                self.report("restarting", child.name, f"restart {watch.restarts}")
                changed = True
            elif watch.state == "starting":
                ready = False
                with contextlib.suppress(Exception):  # not answering yet means "not ready"
                    ready = child.is_ready()
                if ready:
                    watch.state, watch.up_since = "up", now
                    self._log(child, "ready again")
                    self.report("ready", child.name, f"back after restart {watch.restarts}")
                    changed = True
            elif (
                watch.state == "up"
                and watch.restarts
                and now - watch.up_since > self.stable_seconds
            ):
                watch.restarts = 0  # stable again: the next crash restarts at once
        return changed
