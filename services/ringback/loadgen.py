"""`ringback loadgen`: simulated vendor traffic against any edge URL.

Every route and format, a configurable mix and rate, multi-report SMS arrays, every voice push on
both voice URLs, a share of vendor resends (the same body again) and of malformed bodies. Shows progress
with a live rate and prints a summary: sent, accepted, failed, latency percentiles. Every body carries
a run tag (in ids, app ids and custom parameters; an SMS reply, which has no id, in ``extend``) so that
the events of one run can be counted in ClickHouse afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from ringback.loadgen_http import Connection, HttpError

#: route -> relative weight in the default mix (SMS receipts dominate real traffic)
DEFAULT_MIX = {
    "tencent/sms-status": 60,
    "tencent/voicecode": 5,
    "tencent/voiceprompt": 5,
    "tencent/sms-reply": 2,  # a few end users answer an SMS
    "cdr-push": 15,
    "callback-call/status": 8,
    "callback-call/hangup": 4,
    "callback-call/record": 2,
    "callback-call/keypress": 1,
}
#: What each Tencent voice URL receives (Tencent sends every voice push of an application to its one
#: URL): mostly call status, key presses where prompts ask for them, some calls that could not be placed.
VOICE_BODIES = {
    "tencent/voicecode": {"voicecode_callback": 90, "voice_failure_callback": 10},
    "tencent/voiceprompt": {"voiceprompt_callback": 70, "voicekey_callback": 20, "voice_failure_callback": 10},
}
#: The call failures seen most, with the vendor's text (its "推送回执相关错误码" table).
VOICE_FAILURES = {1: "关机", 2: "通话中", 5: "无人接听", 8: "空号", 10: "用户正忙", 18: "网络忙"}
SMS_REPLY_TEXTS = ("退订", "TD", "1", "好的", "Y", "收到，谢谢")
#: Routes whose events have no vendor id (sid, call_id, request_id) to carry the run tag: an SMS reply
#: carries it in ``extend`` (the event's ``attributes['extend']``), and its events are counted apart.
TAG_IN_EXTEND = frozenset({"tencent/sms-reply"})
SMS_REPORTS_MAX = 10
REQUEST_TIMEOUT_S = 30.0
BASE_UNIX = 1_763_700_000


@dataclass
class Generated:
    route: str
    body: bytes
    events: int  # events this body normalizes to (0 for malformed bodies)
    key: str  # identity of the body for resend accounting


class TrafficMaker:
    """Builds realistic vendor bodies; deterministic for a given seed."""

    def __init__(self, tag: str, mix: dict[str, int], seed: int = 7) -> None:
        self.tag = tag
        self.routes = list(mix)
        self.weights = [mix[r] for r in self.routes]
        self.rng = random.Random(seed)
        self.counter = 0

    def next(self) -> Generated:
        self.counter += 1
        route = self.rng.choices(self.routes, self.weights)[0]
        n = self.counter
        body, events = getattr(self, "_" + route.replace("/", "_").replace("-", "_"))(n)
        return Generated(route, orjson.dumps(body), events, f"{route}#{n}")

    def malformed(self) -> Generated:
        good = self.next()
        cut = self.rng.randint(1, max(1, len(good.body) - 1))
        return Generated(good.route, good.body[:cut], 0, good.key + "#broken")

    def _mobile(self) -> str:
        return f"13{self.rng.randint(0, 999_999_999):09d}"

    def _tencent_sms_status(self, n: int) -> tuple[Any, int]:
        count = self.rng.randint(1, SMS_REPORTS_MAX)
        reports = []
        for i in range(count):
            ok = self.rng.random() < 0.9
            reports.append({
                "user_receive_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(BASE_UNIX + n)),
                "nationcode": "86", "mobile": self._mobile(), "report_status": "SUCCESS" if ok else "FAIL",
                "errmsg": "DELIVRD" if ok else self.rng.choice(["UNDELIV", "EXPIRED", "MK:0001", "REJECTD"]),
                "description": "loadgen", "sid": f"{self.tag}-{n}-{i}",
            })
        return reports, count

    def _voice(self, route: str, n: int) -> tuple[Any, int]:
        bodies = VOICE_BODIES[route]
        wrapper = self.rng.choices(list(bodies), list(bodies.values()))[0]
        parties = {"call_from": "075583763333", "callid": f"{self.tag}-{n}", "mobile": self._mobile(), "nationcode": "86"}
        if wrapper == "voicekey_callback":
            return {wrapper: {**parties, "keypress": self.rng.choice(["1", "1", "2", "0", "#"])}}, 1
        if wrapper == "voice_failure_callback":
            code = self.rng.choice(list(VOICE_FAILURES))
            return {wrapper: {**parties, "call_from": "", "failure_code": code, "failure_reason": VOICE_FAILURES[code]}}, 1
        start = BASE_UNIX + n
        return {wrapper: {
            **parties, "result": self.rng.choice(["0", "0", "0", "1", "2"]), "accept_time": str(start + 5), "end_calltime": str(start + 30),
            "fee": "1", "start_calltime": str(start),
        }}, 1

    def _tencent_voicecode(self, n: int) -> tuple[Any, int]:
        return self._voice("tencent/voicecode", n)

    def _tencent_voiceprompt(self, n: int) -> tuple[Any, int]:
        return self._voice("tencent/voiceprompt", n)

    def _tencent_sms_reply(self, n: int) -> tuple[Any, int]:
        return {"extend": self.tag, "mobile": self._mobile(), "nationcode": "86", "sign": "ringback", "text": self.rng.choice(SMS_REPLY_TEXTS),
                "time": BASE_UNIX + n}, 1

    def _cdr_push(self, n: int) -> tuple[Any, int]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(BASE_UNIX + n))
        kind = self.rng.choice(["2", "4", "4", "5", "state"])
        if kind == "state":
            return {"requestid": f"{self.tag}-{n}", "src": "01053180002", "dsc": self._mobile(), "timestamp": stamp[:19],
                    "state": self.rng.choice(["callout", "alerting", "answer", "disconnect"])}, 1
        entry: dict[str, Any] = {"requestid": f"{self.tag}-{n}", "appid": f"app-{self.tag}", "fid": kind, "duration": "60",
                                 "oriamount": f"{self.rng.randint(1, 500) / 100:.2f}"}
        if kind == "4":
            entry.update(caller=self._mobile(), called=self._mobile(), callerstime=stamp, calleretime=stamp, calledstime=stamp,
                         calledetime=stamp, tapesurl="NoTapes", stateDesc=self.rng.choice(["正常", "未应答", "用户正忙"]), customParm=self.tag)
        else:
            entry.update(tel=self._mobile(), stime=stamp, etime=stamp)
            if kind == "5":
                entry.update(confid="516152", singleoriamount=entry.pop("oriamount"), customParm=self.tag)
        return {"cdr": [entry]}, 1

    def _callback_call_status(self, n: int) -> tuple[Any, int]:
        return {"appId": f"app-{self.tag}", "callId": f"{self.tag}-{n}", "src": "008613631686024", "dst": "0086" + self._mobile(),
                "userFlag": self.rng.choice(["src", "dst"]), "callStatus": self.rng.choice(["invite", "ringing", "answered", "disaccept"]),
                "timeStamp": str(BASE_UNIX + n)}, 1

    def _callback_call_hangup(self, n: int) -> tuple[Any, int]:
        start = BASE_UNIX + n
        return {"appId": f"app-{self.tag}", "callId": f"{self.tag}-{n}", "src": "008613631686024", "dst": "0086" + self._mobile(),
                "startSrcCallTime": str(start), "srcAcceptTime": str(start + 3), "startDstCallTime": str(start + 4), "dstAcceptTime": str(start + 9),
                "endCallTime": str(start + 70), "callEndStatus": "1", "duration": "61"}, 1

    def _callback_call_record(self, n: int) -> tuple[Any, int]:
        return {"appId": f"app-{self.tag}", "callId": f"{self.tag}-{n}", "recordUrl": f"https://record.example.com/{self.tag}-{n}.mp3"}, 1

    def _callback_call_keypress(self, n: int) -> tuple[Any, int]:
        return {"appId": f"app-{self.tag}", "callId": f"{self.tag}-{n}", "phone": "008613631686024", "key": self.rng.choice("0123456789*#"),
                "timeStamp": str(BASE_UNIX + n)}, 1


@dataclass
class Summary:
    tag: str
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    resends: int = 0
    malformed: int = 0
    expected_events: int = 0  # unique events the accepted well-formed bodies normalize to, with the run tag in a vendor id
    expected_replies: int = 0  # the same for SMS replies, with the run tag in attributes['extend'] (see TAG_IN_EXTEND)
    by_route: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    accepted_at: dict[str, float] = field(default_factory=dict)  # body key -> wall time of its first success
    #: Keys sent more than once: their stored row may be the resend's (the events table keeps the last copy).
    resent_keys: set[str] = field(default_factory=set)

    def percentile(self, p: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag, "sent": self.sent, "accepted": self.accepted, "failed": self.failed, "resends": self.resends,
            "malformed": self.malformed, "expected_events": self.expected_events, "expected_replies": self.expected_replies,
            "rate_per_s": round(self.rate, 1),
            "latency_ms": {f"p{p}": round(self.percentile(p) * 1000, 2) for p in (50, 90, 99, 100)},
            "by_route": dict(self.by_route), "statuses": {str(k): v for k, v in self.statuses.items()},
        }

    def render(self) -> str:
        lines = [
            f"loadgen {self.tag}: sent {self.sent} in {self.elapsed_s:.1f}s ({self.rate:.0f}/s), accepted {self.accepted}, failed {self.failed}",
            f"  resends {self.resends}, malformed {self.malformed}, unique events expected {self.expected_events} (and SMS replies {self.expected_replies})",
            "  latency ms: " + "  ".join(f"p{p} {self.percentile(p) * 1000:.1f}" for p in (50, 90, 99, 100)),
            "  statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())),
            "  routes: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.by_route.items())),
        ]
        return "\n".join(lines)


@dataclass
class LoadPlan:
    url: str
    requests: int = 0  # 0 = until duration ends
    duration_s: float = 10.0
    rate: float = 0.0  # requests per second, 0 = as fast as the connections allow
    connections: int = 32
    resend_share: float = 0.05
    malformed_share: float = 0.01
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 7
    tag: str = field(default_factory=lambda: "lg" + uuid.uuid4().hex[:8])


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        route, _, weight = part.partition("=")
        if route.strip() not in DEFAULT_MIX:
            raise ValueError(f"unknown route {route!r}; known: {', '.join(DEFAULT_MIX)}")
        mix[route.strip()] = int(weight or 1)
    return mix


async def run(plan: LoadPlan, show_progress: bool = True) -> Summary:
    maker = TrafficMaker(plan.tag, plan.mix, plan.seed)
    summary = Summary(tag=plan.tag)
    sent_ok: list[Generated] = []
    counted: set[str] = set()
    deadline = time.monotonic() + plan.duration_s if not plan.requests else float("inf")
    issued = 0
    start = time.monotonic()
    progress = _progress(show_progress, plan)

    def next_body() -> Generated | None:
        nonlocal issued
        if (plan.requests and issued >= plan.requests) or time.monotonic() >= deadline:
            return None
        if plan.rate:
            due = start + issued / plan.rate
            if due > time.monotonic():
                return Generated("", b"", 0, "__wait__" + str(due))
        issued += 1
        roll = maker.rng.random()
        if sent_ok and roll < plan.resend_share:
            summary.resends += 1
            resend = maker.rng.choice(sent_ok)
            summary.resent_keys.add(resend.key)
            return resend
        if roll < plan.resend_share + plan.malformed_share:
            summary.malformed += 1
            return maker.malformed()
        return maker.next()

    async def worker() -> None:
        connection = Connection(plan.url, REQUEST_TIMEOUT_S)
        try:
            await send_until_done(connection)
        finally:
            connection.close()

    async def send_until_done(connection: Connection) -> None:
        while True:
            item = next_body()
            if item is None:
                return
            if item.key.startswith("__wait__"):
                await asyncio.sleep(max(0.0, float(item.key[8:]) - time.monotonic()))
                continue
            began = time.perf_counter()
            try:
                status, _ = await connection.post(f"/callbacks/{item.route}", item.body)
            except HttpError:
                status = 0
            summary.latencies_s.append(time.perf_counter() - began)
            summary.sent += 1
            summary.statuses[status] += 1
            summary.by_route[item.route] += 1
            if 200 <= status < 300:
                summary.accepted += 1
                if item.key not in counted:
                    counted.add(item.key)
                    summary.accepted_at[item.key] = time.time()
                    if item.route in TAG_IN_EXTEND:
                        summary.expected_replies += item.events
                    else:
                        summary.expected_events += item.events
                    if item.events:
                        sent_ok.append(item)
            else:
                summary.failed += 1
            if progress is not None:
                progress.advance()

    if progress is not None:
        progress.start()
    try:
        await asyncio.gather(*(worker() for _ in range(plan.connections)))
    finally:
        if progress is not None:
            progress.stop()
    summary.elapsed_s = time.monotonic() - start
    return summary


class _LiveProgress:
    """A rich progress bar with the live request rate."""

    def __init__(self, plan: LoadPlan) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]loadgen"), BarColumn(), TextColumn("{task.description} sent"),
            TextColumn("{task.fields[rate]:>8.0f}/s"), TimeElapsedColumn(), transient=False,
        )
        self.total = plan.requests or None
        self.task = self.progress.add_task("0", total=self.total or max(1.0, plan.duration_s), rate=0.0)
        self.by_time = not plan.requests
        self.started = time.monotonic()
        self.count = 0

    def start(self) -> None:
        self.progress.start()

    def advance(self) -> None:
        self.count += 1
        elapsed = time.monotonic() - self.started
        completed = min(elapsed, self.progress.tasks[0].total or elapsed) if self.by_time else self.count
        if self.count % 50 == 0 or self.count == self.total:
            self.progress.update(self.task, completed=completed, rate=self.count / elapsed if elapsed else 0.0, description=f"{self.count}")

    def stop(self) -> None:
        self.progress.stop()


def _progress(show: bool, plan: LoadPlan) -> _LiveProgress | None:
    return _LiveProgress(plan) if show else None
