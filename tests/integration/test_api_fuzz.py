"""The edge against its own OpenAPI document: served as it is kept, and fuzzed (schemathesis).

A live edge — real socket, real embedded broker, a tenants file with one tenant — is fuzzed through
every operation of the document it serves (``schemas/openapi.json``; a test below checks that the edge
serves exactly those bytes at ``/openapi.json``): the document's examples (the golden fixtures),
boundary cases of every schema and parameter, methods a path does not serve, and generated requests
that fit the document and that do not. Tenant URLs are sent with the right tenant and secret, the
right tenant and a wrong secret, and an unknown tenant. Every response must have a documented status,
content type and body; no response may be a 5xx (the edge is healthy, so any would be a defect); no
request may go unanswered. Afterwards the edge still answers ``/readyz``.

``RINGBACK_FUZZ_EXAMPLES`` (default 8) is the number of generated requests per operation and
generation mode; raise it for a longer run, e.g. ``RINGBACK_FUZZ_EXAMPLES=500``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
import requests
import schemathesis
from schemathesis import Case

from ringback import config
from ringback.config import Settings
from ringback.edge import openapi
from ringback.edge.app import create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import start_edge
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies draw from `random`; Hypothesis warns about it on every operation.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

DOCUMENT_FILE = REPO_ROOT / "schemas" / openapi.FILE_NAME
TENANT_ID = "fuzz-tenant"
TENANT_SECRET = "fuzz-secret-" + uuid.uuid4().hex
EXAMPLES = int(os.environ.get("RINGBACK_FUZZ_EXAMPLES", "8"))
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0
#: What a tenant URL is sent with.
RIGHT, WRONG_SECRET, UNKNOWN_TENANT = "right secret", "wrong secret", "unknown tenant"
CREDENTIALS = (RIGHT, WRONG_SECRET, UNKNOWN_TENANT)
#: What a tenant URL without the right credentials may be answered: refused, no such route, wrong method.
REFUSED = {401, 404, 405}


@dataclass
class LiveEdge:
    url: str
    settings: Settings
    session: requests.Session = field(default_factory=requests.Session)
    #: (credentials sent on a tenant URL, or "anonymous"; status) of every fuzzed request
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)


def edge_settings(directory: Path, bootstrap: str, **overrides: object) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    settings = config.load(
        {
            "data_dir": str(directory / "data"),
            "kafka_bootstrap": bootstrap,
            "topic_raw": f"test.raw.{suffix}",
            "topic_normalized": f"test.normalized.{suffix}",
            "topic_dlq": f"test.dlq.{suffix}",
            "topic_ledger": f"test.ledger.{suffix}",
            "kafka_partitions": 2,
            "port": 0,
        },
        environ={},
    )
    return settings.replace(**overrides)


def tenants_file(directory: Path) -> Path:
    path = directory / "tenants.toml"
    path.write_text(
        (
            f'allow_anonymous = true\n\n[[tenants]]\nid = "{TENANT_ID}"\nsecret = "{TENANT_SECRET}"\napp_id = '
            '"1400000000"\n'
        ),
        encoding="utf-8",
    )
    return path


@contextmanager
def edge_in_a_thread(settings: Settings) -> Iterator[str]:
    """A real edge on its own event loop and thread (schemathesis' requests block the test's thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="edge", daemon=True)
    thread.start()

    async def start() -> tuple[EdgeRunner, int]:
        await kafka.ensure_topics(settings)
        return await start_edge(settings, create_app(settings))

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(START_TIMEOUT_S)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(START_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        loop.close()


@pytest.fixture(scope="module")
def live_edge(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEdge]:
    directory = tmp_path_factory.mktemp("fuzzed-edge")
    settings = edge_settings(directory, broker.bootstrap, tenants_file=str(tenants_file(directory)))
    with edge_in_a_thread(settings) as url:
        edge = LiveEdge(url, settings)
        yield edge
        edge.session.close()


FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": EXAMPLES},
        "phases": {"stateful": {"enabled": False}},  # no resources to create and follow
        "checks": {
            # The edge acknowledges any bytes on a known route (durable, then dead-lettered): a body outside
            # the vendor's schema is a 200 by design, not a request that should have been rejected.
            "negative_data_rejection": {"enabled": False},
        },
    }
)
#: The document as kept; the live edge serves exactly these bytes (test below), at the URL each call is sent to.
schema = schemathesis.openapi.from_path(DOCUMENT_FILE, config=FUZZ_CONFIG)


def credentials_for(case: Case) -> str:
    """Chosen from what was generated (parameters and body), so that a replayed example is sent alike."""
    generated = repr((sorted(case.path_parameters.items()), case.body))
    return CREDENTIALS[zlib.crc32(generated.encode("utf-8", "surrogatepass")) % len(CREDENTIALS)]


def send_tenant_as(case: Case, credentials: str) -> None:
    if credentials == RIGHT:
        case.path_parameters = {**case.path_parameters, "tenant": TENANT_ID, "secret": TENANT_SECRET}
    elif credentials == WRONG_SECRET:
        case.path_parameters = {**case.path_parameters, "tenant": TENANT_ID}


@schema.parametrize()
def test_every_reply_of_the_live_edge_is_documented(case: Case, live_edge: LiveEdge) -> None:
    who = "anonymous"
    if "secret" in case.path_parameters:
        who = credentials_for(case)
        send_tenant_as(case, who)
    response = case.call_and_validate(base_url=live_edge.url, session=live_edge.session, timeout=REQUEST_TIMEOUT_S)
    live_edge.seen[(who, response.status_code)] += 1


SMS_BODY = (
    b'[{"user_receive_time":"2026-11-21 08:00:00","nationcode":"86","mobile":"13800138000",'
    b'"report_status":"SUCCESS","errmsg":"DELIVRD","description":"ok","sid":"fuzz-after"}]'
)


def test_after_the_fuzz_the_edge_is_ready_and_every_kind_of_caller_is_answered(live_edge: LiveEdge) -> None:
    """On the fuzzed edge (whatever of the fuzz ran before this test): nothing was answered 5xx, the
    edge is ready, and each kind of caller gets its answer."""
    assert not any(status >= 500 for _, status in live_edge.seen), live_edge.seen
    ready = live_edge.session.get(live_edge.url + "/readyz", timeout=REQUEST_TIMEOUT_S)
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["tenants"] == 1
    route = "/callbacks/tencent/sms-status"
    callers = {
        "anonymous": (route, 200),
        RIGHT: (f"/t/{TENANT_ID}/{TENANT_SECRET}{route}", 200),
        WRONG_SECRET: (f"/t/{TENANT_ID}/not-the-secret-{uuid.uuid4().hex}{route}", 401),
        UNKNOWN_TENANT: (f"/t/nobody-{uuid.uuid4().hex[:8]}/{TENANT_SECRET}{route}", 401),
    }
    for who, (path, status) in callers.items():
        reply = live_edge.session.post(live_edge.url + path, data=SMS_BODY, timeout=REQUEST_TIMEOUT_S)
        assert reply.status_code == status, (who, reply.status_code, reply.text)
        assert (reply.json()["result"] == 0) is (status == 200), (who, reply.text)


def test_the_live_edge_serves_the_document_as_kept_and_its_readiness_as_documented(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Without a tenants file, so that ``/readyz`` says the edge is open to anyone."""
    kept = DOCUMENT_FILE.read_bytes()
    with edge_in_a_thread(edge_settings(tmp_path, broker.bootstrap)) as url:
        served = requests.get(url + openapi.DOCUMENT_PATH, timeout=REQUEST_TIMEOUT_S)
        ready = requests.get(url + "/readyz", timeout=REQUEST_TIMEOUT_S)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith(openapi.JSON)
    assert served.content == kept
    document = json.loads(kept)
    readiness = {**document["components"]["schemas"]["Readiness"], "components": document["components"]}
    jsonschema.Draft202012Validator(readiness).validate(ready.json())
    assert ready.json()["tenants"] == "none: open to anyone"


def test_an_edge_without_the_document_says_so(broker: EmbeddedBroker, tmp_path: Path) -> None:
    with edge_in_a_thread(edge_settings(tmp_path, broker.bootstrap, schemas_dir=str(tmp_path))) as url:
        missing = requests.get(url + openapi.DOCUMENT_PATH, timeout=REQUEST_TIMEOUT_S)
    assert missing.status_code == 404 and missing.json()["result"] != 0
