"""``rulestream serve --split``: the followers as child processes, ``rulestream worker policy`` and ``projections``.

One Python process runs on one core at a time (the interpreter lock). With the followers as threads beside the
API (``serve``), every request shares that core with eight followers, and a second core sits partly idle: on two
cores the API answered 1.5-1.9x as many requests per second with the followers in processes of their own
(bench/RESULTS.md, 2026-12-03). ``serve --split`` starts production's shape on one machine, with one command: the
API in this process, each follower group in a child, supervised.

- The API starts listening once every child's followers are running (each child says so on a pipe), so the
  first command after ``/health`` answers 200 has its effects: the policy is there to evaluate it.
- A child that exits while ``serve`` runs is started again (after a second, doubling while it keeps failing
  fast); stopping ``serve`` stops its children (``SIGTERM``, then ``SIGKILL`` after 10 s), and a child whose
  parent died stops itself.
- The children get this process's environment with ``DATABASE_URL`` set to the database in use (the embedded
  one included), so they see every setting ``serve`` sees.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

log = logging.getLogger("rulestream.supervisor")

READY_FD = "RULESTREAM_READY_FD"
"""A child's readiness pipe: it writes a line there once its followers run."""
PARENT_PID = "RULESTREAM_PARENT_PID"
"""The ``serve`` process a child belongs to: the child stops when that process is gone."""
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10.0
RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0


class Child:
    """One ``rulestream worker <group>`` process, started again whenever it exits unasked."""

    def __init__(self, group: str, env: dict[str, str]) -> None:
        self.group = group
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.backoff = RESTART_SECONDS

    def start(self, *, ready_pipe: bool = True) -> int | None:
        """Start the process; answer the read end of its readiness pipe (if asked for one).

        In a session of its own, so that a Ctrl+C at the terminal reaches ``serve`` alone, which then stops its
        children in order (a child that took the signal too would look like one that died, and be restarted)."""
        read, write = os.pipe() if ready_pipe else (None, None)
        env = {**self.env, PARENT_PID: str(os.getpid())} | ({READY_FD: str(write)} if write is not None else {})
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", self.group],
                env=env, pass_fds=() if write is None else (write,), start_new_session=True,
            )  # fmt: skip
        finally:
            if write is not None:
                os.close(write)
        self.started_at = time.monotonic()
        return read

    def due(self) -> float:
        """When to start it again after it exited: after a second, doubling (to 30 s) while it keeps failing fast
        (a database that is down makes every start fail; the followers inside ride out shorter outages)."""
        lived = time.monotonic() - self.started_at
        self.backoff = RESTART_SECONDS if lived > 10 * self.backoff else min(self.backoff * 2, MAX_RESTART_SECONDS)
        return time.monotonic() + self.backoff


class Supervisor:
    """Start the children, wait until they are ready, restart those that exit, stop them all at the end."""

    def __init__(self, groups: Sequence[str], database_url: str) -> None:
        env = {**os.environ, "DATABASE_URL": database_url}
        self.children = [Child(group, env) for group in groups]
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start every child and wait (at most ``START_TIMEOUT_SECONDS``) until each says it is ready."""
        pipes: dict[int, Child] = {}
        for child in self.children:
            fd = child.start()
            assert fd is not None
            pipes[fd] = child
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            while pipes:
                remaining = deadline - time.monotonic()
                readable, _, _ = select.select(list(pipes), [], [], max(0.0, min(remaining, 1.0)))
                for fd in readable:
                    child = pipes.pop(fd)
                    said = os.read(fd, 64)
                    os.close(fd)
                    if not said:  # the pipe closed without a word: the child exited
                        code = child.process.wait() if child.process else None
                        raise RuntimeError(f"worker {child.group} exited during start-up (code {code})")
                if remaining <= 0 and pipes:
                    raise RuntimeError(f"workers not ready in {START_TIMEOUT_SECONDS:.0f} s: "
                                       + ", ".join(c.group for c in pipes.values()))  # fmt: skip
        except BaseException:
            for fd in pipes:
                os.close(fd)
            self.stop()
            raise
        self._watcher.start()

    def _watch(self) -> None:
        due: dict[str, float] = {}
        while not self.stopping.wait(0.5):
            for child in self.children:
                process = child.process
                if process is None or process.poll() is None:
                    continue
                if child.group not in due:
                    due[child.group] = child.due()
                    log.warning("worker %s exited with code %s; starting it again in %.0f s", child.group,
                                process.returncode, child.backoff)  # fmt: skip
                elif time.monotonic() >= due[child.group]:
                    with self._lock:  # never a new child once stop() has looked for those to stop
                        if self.stopping.is_set():
                            return
                        del due[child.group]
                        child.start(ready_pipe=False)  # not waited for: the API is serving already

    def stop(self) -> None:
        """Stop every child: ``SIGTERM`` (they finish their batch), ``SIGKILL`` after ``STOP_TIMEOUT_SECONDS``."""
        with self._lock:
            self.stopping.set()
            running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tell_ready() -> None:
    """In a child: tell ``serve`` that the followers run (nothing to do when not started by ``serve``)."""
    fd = os.environ.pop(READY_FD, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))
    except OSError:
        log.warning("could not tell the parent process that this worker is ready")


def watch_parent(stop: threading.Event) -> None:
    """In a child: set ``stop`` once the ``serve`` process that started it is gone (killed, crashed)."""
    parent = os.environ.get(PARENT_PID)
    if parent is None:
        return

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != int(parent):
                log.warning("the serve process %s is gone; stopping", parent)
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
