"""`ringback loadgen`: simulated vendor traffic against any edge URL.

The generator tells stories the way the vendors push them, each in its own time:

- a **Tencent SMS** send of 1–10 messages, reported in one receipt array (most DELIVRD, some a
  carrier's failure code, some first ENROUTE with the final receipt in a later push); a few end
  users reply;
- a **Tencent voice** code or prompt call: a key press during some prompts, then the status push
  with its `fee`; or the call failure the vendor reports instead;
- the **CDR platform**'s two-way call (state pushes callout → alerting → answer → disconnect, then
  the fid-4 CDR with the same `requestid`), its voice-code CDR (fid 2) and its conference CDRs (fid 5);
- a **click-to-call** call: status pushes per leg (invite → ringing → answered / refused / failed →
  hang-up), key presses where the app asks for one, the hang-up CDR, and a recording of some answered
  calls.

Each story belongs to one of several applications (``--apps``) spread over the tenants given (their
URLs ``/t/{tenant}/{secret}/callbacks/…``), else sent to the tenant-less routes. Vendor times are
whole seconds a little before the moment a push is sent; a story's pushes wait in a bounded queue
until their time comes (see ``TrafficMaker``). A share of requests resend an earlier body, as vendors
do, and a share are malformed. Every body carries a run tag (in ids; an SMS reply, which has no id, in
``extend``) so that the events of one run can be counted in ClickHouse afterwards.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
import tomllib
import uuid
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson

from ringback.loadgen_http import Connection, HttpError

T = TypeVar("T")

#: route -> relative weight in the default mix (SMS receipts dominate real traffic). A vendor's story
#: uses several routes; each product gets the share of requests of its routes together, and the
#: vendor's behaviour splits it between them (e.g. a reply answers ~2 % of delivered messages).
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
#: The products, each a vendor's set of pushes for one story.
TENCENT_SMS, TENCENT_VOICE, CDR_PLATFORM, CLICK_TO_CALL = (
    "tencent-sms",
    "tencent-voice",
    "cdr-platform",
    "click-to-call",
)
PRODUCT_ROUTES: dict[str, tuple[str, ...]] = {
    TENCENT_SMS: ("tencent/sms-status", "tencent/sms-reply"),
    TENCENT_VOICE: ("tencent/voicecode", "tencent/voiceprompt"),
    CDR_PLATFORM: ("cdr-push",),
    CLICK_TO_CALL: ("callback-call/status", "callback-call/hangup", "callback-call/record", "callback-call/keypress"),
}
#: Routes whose events have no vendor id (sid, call_id, request_id) to carry the run tag: an SMS reply
#: carries it in ``extend`` (the event's ``attributes['extend']``), and its events are counted apart.
TAG_IN_EXTEND = frozenset({"tencent/sms-reply"})
REQUEST_TIMEOUT_S = 30.0
#: A resend repeats one of the last this many bodies accepted (vendors retry recent pushes; memory stays bounded).
RESEND_WINDOW = 10_000

# --- Applications and tenants -------------------------------------------------------------------------
#: Applications sharing the traffic; app i gets the weight 1/(i+1): a big customer or two and a tail.
DEFAULT_APPS = 5
APP_ANSWER_RATIO = (0.42, 0.60)  # per app, uniform: the share of placed calls the callee answers
APP_SMS_DELIVERED = (0.90, 0.97)  # per app, uniform: the share of messages finally DELIVRD
APP_FEN_PER_MINUTE = (6, 8, 10, 12)  # per app: the platform's price of a started minute, in fen (0.01 CNY)
APP_RECORDS_CALLS = 0.5  # share of apps that record their calls
APP_ASKS_FOR_A_KEY = 0.4  # share of click-to-call apps whose caller presses 1 before the callee is dialled
APP_AMOUNTS_AS_NUMBERS = 0.3  # share of apps whose CDRs carry duration and oriamount as JSON numbers, not text
# (The first app records its calls and asks for a key, so that every route has traffic.)
SMS_SIGNS = ("腾讯云", "快递通知", "美团", "招商银行", "滴滴出行", "京东", "小红书", "携程旅行")
DISPLAY_AREA_CODES = ("010", "021", "0755", "020", "0571")  # the landline callees see

# --- Numbers --------------------------------------------------------------------------------------------
#: Chinese mobile number blocks per carrier and the carrier's share of subscribers (roughly), so that
#: carrier analyses see a realistic split.
MOBILE_BLOCKS = {
    "China Mobile": (
        60,
        (
            "135",
            "136",
            "137",
            "138",
            "139",
            "147",
            "150",
            "151",
            "152",
            "157",
            "158",
            "159",
            "178",
            "182",
            "183",
            "184",
            "187",
            "188",
            "195",
            "198",
        ),
    ),
    "China Unicom": (20, ("130", "131", "132", "145", "155", "156", "166", "175", "176", "185", "186")),
    "China Telecom": (20, ("133", "153", "190", "193", "173", "177", "180", "181", "189", "191", "199")),
}
MOBILE_PREFIXES = {block: share / len(blocks) for share, blocks in MOBILE_BLOCKS.values() for block in blocks}
#: The same weights as a table drawn from with one index (a block listed once per 1/1000 of numbers).
MOBILE_PREFIX_TABLE = tuple(block for block, weight in MOBILE_PREFIXES.items() for _ in range(round(weight * 10)))
MOBILE_SUFFIXES = 10**8
#: Every number of a run is different (a permutation of the 8-digit suffixes: the stride is coprime with
#: 10^8), so that two SMS replies, whose only identity is who answered what when, can never collide.
MOBILE_STRIDE = 48_271_923
CHINA = "86"

# --- Times ------------------------------------------------------------------------------------------------
CHINA_UTC_OFFSET_S = 8 * 3600  # Asia/Shanghai, the vendors' local time (no daylight saving since 1991)
#: A story starts this long before the moment it is told, so that its first push is (nearly) due.
STORY_LEAD_S = 4
#: For this long after it starts, the generator also tells a story that began up to this long before
#: it started: the run opens on traffic already under way (calls that end, CDRs that arrive from the
#: first second), not on a cold start where only short calls finish.
WARM_START_S = 180.0
#: A bound on the pushes waiting for their time. Beyond it, a new story is told at once: it has
#: already happened (its times in the past, its pushes in order, each due now).
MAX_PENDING_PUSHES = 20_000
LOCAL_TIME_CACHE = 4096
#: A mix whose routes no story reaches is an error, not a hang.
MAX_STORIES_WITHOUT_A_PUSH = 100_000


@dataclass(frozen=True)
class LogNormal:
    """A log-normal duration (seconds) with its median and shape, clipped to [low, high]."""

    median: float
    sigma: float
    low: float
    high: float
    mu: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", math.log(self.median))

    def draw(self, rng: random.Random) -> float:
        return min(self.high, max(self.low, math.exp(rng.gauss(self.mu, self.sigma))))

    def seconds(self, rng: random.Random) -> int:
        return round(self.draw(rng))


def between(rng: random.Random, bounds: tuple[int, int]) -> int:
    """A uniform whole number in [low, high] (``randint`` costs four times as much)."""
    low, high = bounds
    return low + int(rng.random() * (high - low + 1))


class Weighted(Generic[T]):
    """A weighted choice, drawn with one random number."""

    def __init__(self, weights: Mapping[T, float]) -> None:
        self.items = [item for item, weight in weights.items() if weight > 0]
        self.cumulative = list(itertools.accumulate(weights[item] for item in self.items))
        if not self.items:
            raise ValueError("nothing to choose from: every weight is 0")

    def draw(self, rng: random.Random) -> T:
        return self.items[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


# --- Calls: outcomes and durations -----------------------------------------------------------------------
ANSWERED, NO_ANSWER, BUSY, REJECTED, UNREACHABLE, INVALID_NUMBER, CALL_FAILED = (
    "answered",
    "no_answer",
    "busy",
    "rejected",
    "unreachable",
    "invalid_number",
    "call_failed",
)
#: Why a placed call that was not answered was not (the app's answer ratio decides whether it was).
NOT_ANSWERED = Weighted({NO_ANSWER: 45, UNREACHABLE: 20, BUSY: 14, REJECTED: 8, INVALID_NUMBER: 7, CALL_FAILED: 6})
TALK_S = LogNormal(median=75, sigma=0.9, low=1, high=1800)  # a conversation: mean ~110 s, 30 min at most
VOICE_CODE_TALK_S = LogNormal(median=22, sigma=0.25, low=8, high=60)  # a code read out two or three times
VOICE_PROMPT_TALK_S = LogNormal(median=30, sigma=0.45, low=5, high=120)
CONFERENCE_LEG_S = LogNormal(median=240, sigma=0.7, low=10, high=1800)
SETUP_S = (1, 3)  # uniform: dialled -> ringing
RING_S = LogNormal(median=7, sigma=0.5, low=1, high=50)  # ringing -> answered
NO_ANSWER_RING_S = (30, 60)  # uniform: how long an unanswered phone rings before the network gives up
REJECT_AFTER_S = (3, 15)  # uniform: ringing -> declined
FAIL_AFTER_S = (1, 8)  # uniform: dialled -> busy tone, announcement (powered off, vacant) or error
#: Event -> push (the vendor's delivery), per kind of push.
STATE_PUSH_DELAY_S = LogNormal(median=0.8, sigma=0.6, low=0.05, high=10)
CDR_PUSH_DELAY_S = LogNormal(median=3, sigma=0.6, low=0.5, high=30)
RECORDING_DELAY_S = LogNormal(median=12, sigma=0.5, low=2, high=60)  # the file is processed first
PUSH_DELAY_MAX_S = 60  # the highest of the delays above

# Tencent voice (seeds 000, 001 and the vendor's "推送回执相关错误码" table)
PROMPT_WITHOUT_CALLER_ID = 0.5  # share of prompts whose callee sees no number (call_from "")
VOICE_KEY_PRESS = 0.3  # share of answered prompts where the callee presses a key
VOICE_KEYS = Weighted({"1": 50, "2": 20, "0": 10, "9": 5, "#": 10, "*": 5})
VOICE_KEY_AFTER_S = (4, 12)  # uniform: answered -> key pressed
VOICE_STATUS_RESULT = {ANSWERED: "0", NO_ANSWER: "1", REJECTED: "1", CALL_FAILED: "2"}
#: Outcomes Tencent reports as a call failure instead of a status push, and with which codes. A call
#: not answered or failing in the network is a status push (result 1 or 2) in the remaining cases.
VOICE_FAILURE_CODES: dict[str, Weighted[int]] = {
    BUSY: Weighted({2: 40, 10: 60}),
    UNREACHABLE: Weighted({1: 45, 3: 15, 6: 15, 7: 10, 13: 5, 4: 5, 16: 3, 17: 2}),
    INVALID_NUMBER: Weighted({8: 85, 15: 15}),
    NO_ANSWER: Weighted({5: 70, 20: 30}),
    REJECTED: Weighted({12: 100}),
    CALL_FAILED: Weighted({18: 40, 9: 30, 11: 20, 19: 10}),
}
VOICE_FAILURE_INSTEAD = {
    BUSY: 1.0,
    UNREACHABLE: 1.0,
    INVALID_NUMBER: 1.0,
    NO_ANSWER: 0.2,
    REJECTED: 0.3,
    CALL_FAILED: 0.5,
}
VOICE_FAILURE_TEXT = {
    1: "关机",
    2: "通话中",
    3: "不在服务区",
    4: "您拨打的号码已欠费",
    5: "无人接听",
    6: "暂时无法接通",
    7: "停机",
    8: "空号",
    9: "电路正忙",
    10: "用户正忙",
    11: "其他原因",
    12: "呼叫受限,请勿越权使用",
    13: "您拨打的号码已暂停服务",
    15: "号码不存在",
    16: "来电提醒",
    17: "您拨打的号码已过期",
    18: "网络忙",
    19: "未开通语音通话功能",
    20: "无应答",
}

# The CDR platform (seed 002)
CDR_PLATFORM_STORIES = Weighted({"two-way call": 75, "voice code": 15, "conference": 10})
CALLER_ANSWERS_S = (2, 10)  # uniform: the platform calls the caller first, who answers after this long
#: ``stateDesc`` per outcome ("通话结果识别"), combined values included.
STATE_DESC: dict[str, Weighted[str]] = {
    ANSWERED: Weighted({"正常": 70, "应答": 20, "应答|正常": 10}),
    NO_ANSWER: Weighted({"未应答": 60, "无人接听": 40}),
    BUSY: Weighted({"用户正忙": 70, "正在通话中": 30}),
    REJECTED: Weighted({"用户拒接": 85, "呼入限制": 15}),
    UNREACHABLE: Weighted(
        {"关机": 40, "停机": 15, "无法拨通": 15, "暂停服务": 10, "欠费": 10, "无法接听": 5, "来电提醒": 5}
    ),
    INVALID_NUMBER: Weighted({"空号": 85, "改号": 10, "拨号方式不正确": 5}),
    CALL_FAILED: Weighted({"网络忙": 40, "线路故障": 25, "稍后再拨": 20, "呼叫转移失败": 15}),
}
CONFERENCE_PARTIES = (2, 6)  # uniform
CONFERENCE_JOIN_S = (0, 90)  # uniform: when each party joins after the conference starts

# Click-to-call (seed 004 and the CallBackCdr model)
CALLER_ANSWERED = 0.93  # the platform calls the caller (who asked for the call) first
CALLER_NOT_ANSWERED = Weighted({NO_ANSWER: 70, UNREACHABLE: 30})
#: The SIP code a failed or refused leg carries (``errorCode``).
SIP_CODE = {
    NO_ANSWER: "480",
    BUSY: "486",
    REJECTED: "603",
    UNREACHABLE: "503",
    INVALID_NUMBER: "404",
    CALL_FAILED: "500",
}
#: ``callEndStatus`` when the caller did not answer, and when the callee did not.
CALLER_END_STATUS = {NO_ANSWER: "2", UNREACHABLE: "4"}
CALLEE_END_STATUS = {
    ANSWERED: "1",
    NO_ANSWER: "3",
    BUSY: "3",
    REJECTED: "3",
    UNREACHABLE: "5",
    INVALID_NUMBER: "5",
    CALL_FAILED: "5",
}
KEY_PROMPT_S = (3, 8)  # uniform: caller answered -> key pressed (after the prompt)
KEY_REPLAY = 0.1  # share of callers who press 2 (replay the prompt) before 1
CALL_TYPE = "3"  # PSTN to PSTN
RECORDING_HOST = "https://record.example.com"

# Tencent SMS (seed 003; codes from the README's SMS code table)
SMS_REPORTS_MAX = 10
SMS_SEND_WINDOW_S = 4  # the receipts of one send arrive within this many seconds of each other
SMS_ENROUTE = 0.12  # share of messages first reported ENROUTE (still with the carrier)
#: An ENROUTE receipt says "not received (yet)": no report_status (it is neither SUCCESS nor FAIL), the
#: carrier's pending state in errmsg; the final receipt follows.
ENROUTE_REPORT_STATUS = ""
SMS_REPORT_STATUS = {"DELIVRD": "SUCCESS", "ENROUTE": ENROUTE_REPORT_STATUS}  # and FAIL with every failure code
SMS_FINAL_AFTER_ENROUTE_S = LogNormal(median=20, sigma=0.8, low=3, high=600)
SMS_RECEIPT_DELAY_S = LogNormal(median=1.5, sigma=0.6, low=0.2, high=20)
SMS_FAILURE_CODES = Weighted(
    {
        "UNDELIV": 22,
        "EXPIRED": 18,
        "REJECTD": 8,
        "MK:0001": 8,
        "MN:0001": 6,
        "MK:0005": 5,
        "MI:0013": 4,
        "DB:0141": 4,
        "TUIDING": 4,
        "MA:0051": 3,
        "IC:0151": 3,
        "HIGRISK": 3,
        "BWLIST_006": 3,
        "UNDELIV_601": 3,
        "NOROUTE": 2,
        "DELETED": 2,
        "UNDELIVRD": 2,
    }
)
SMS_DESCRIPTION = {
    "DELIVRD": "用户短信送达成功",
    "ENROUTE": "短信已提交运营商，尚未收到回执",
    "EXPIRED": "短信超过有效期未送达",
    "UNDELIV": "用户无法接收短信",
    "REJECTD": "运营商拒绝下发",
    "TUIDING": "用户已退订",
    "HIGRISK": "号码命中高危名单",
}
SMS_FAILED_DESCRIPTION = "运营商返回失败"
SMS_REPLY = 0.02  # share of delivered messages an end user answers
SMS_REPLY_AFTER_S = LogNormal(median=45, sigma=1.0, low=3, high=900)
SMS_REPLY_TEXTS = Weighted(
    {"退订": 30, "TD": 15, "1": 15, "好的": 10, "Y": 8, "收到，谢谢": 7, "已收到": 5, "T": 5, "N": 3, "?": 2}
)


@dataclass(frozen=True)
class Tenant:
    """Whose callback URLs a push goes to; the anonymous tenant uses the tenant-less routes."""

    id: str = ""
    secret: str = ""

    @property
    def prefix(self) -> str:
        return f"/t/{self.id}/{quote(self.secret, safe='')}/callbacks/" if self.id else "/callbacks/"


ANONYMOUS = Tenant()


@dataclass(frozen=True)
class App:
    """A customer application: whose URLs it uses, its ids on the platforms, how its traffic goes."""

    tenant: Tenant
    prefix: str  # the tenant's callback URL prefix
    weight: float
    platform_app_id: str  # the CDR platform's appid
    callback_app_id: str  # click-to-call appId
    display_number: str  # the landline its callees see
    sms_sign: str
    answer_ratio: float
    sms_delivered: float
    fen_per_minute: int
    records_calls: bool
    asks_for_a_key: bool
    amounts_as_numbers: bool


@dataclass(slots=True)
class Generated:
    route: str
    body: bytes
    events: int  # events this body normalizes to (0 for malformed bodies)
    key: str  # identity of the body for resend accounting
    path: str = ""  # where it is posted: /callbacks/{route}, or under the tenant's URL
    tenant: str = ""


@dataclass(slots=True)
class Push:
    """One push of a story: it happened at ``at`` (unix seconds) and the vendor sends it ``delay`` later."""

    route: str
    at: int
    delay: float
    body: Any
    events: int = 1


@dataclass(frozen=True)
class Story:
    """What happens, decided; ``tell`` renders its pushes, in the vendor's order, for a start time."""

    last_event_s: int  # the last event, in seconds after the start
    tell: Callable[[int], list[Push]]


@dataclass(slots=True)
class Message:
    """One SMS of a send, in seconds after the send: its receipts and an end user's reply."""

    sid: str
    mobile: str
    code: str  # the final receipt state: DELIVRD or a failure code
    first_at: int  # its first receipt: ENROUTE when enroute, else the final one
    final_at: int
    enroute: bool
    replied_at: int | None


@dataclass(slots=True)
class Dial:
    """How a dialled leg went, in seconds after it was dialled (None: never)."""

    outcome: str
    rang: int | None
    answered: int | None
    ended: int

    @property
    def talk_s(self) -> int:
        return self.ended - self.answered if self.answered is not None else 0


def billed_minutes(talk_s: int) -> int:
    return -(-talk_s // 60)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class TrafficMaker:
    """Vendor traffic as stories told over time; deterministic for a seed and the clock's readings.

    ``next()`` sends the earliest push whose time has come, else starts a new story: a product chosen so
    that each gets its share of requests (the mix), an application by weight, then what happens in it.
    A story's first push is due about when it starts; the others wait in a queue (at most
    ``max_pending`` pushes; beyond, new stories are told at once, as already over).
    """

    def __init__(
        self,
        tag: str,
        mix: dict[str, int],
        seed: int = 7,
        *,
        tenants: Sequence[Tenant] = (),
        apps: int = DEFAULT_APPS,
        clock: Callable[[], float] = time.time,
        warm_start_s: float = WARM_START_S,
        max_pending: int = MAX_PENDING_PUSHES,
    ) -> None:
        self.tag = tag
        self.routes = frozenset(route for route, weight in mix.items() if weight > 0)
        shares = {product: sum(mix.get(route, 0) for route in routes) for product, routes in PRODUCT_ROUTES.items()}
        if not any(shares.values()):
            raise ValueError("the mix gives every route a weight of 0")
        total = sum(shares.values())
        self.shares = {product: weight / total for product, weight in shares.items() if weight > 0}
        self.planned: Counter[str] = Counter()  # pushes queued per product
        self.planned_total = 0
        voice = {route: mix.get(route, 0) for route in PRODUCT_ROUTES[TENCENT_VOICE]}
        self.voice_routes = Weighted(voice) if any(voice.values()) else None
        self.rng = random.Random(seed)
        self.apps = self._make_apps(max(1, apps), list(tenants) or [ANONYMOUS])
        self.app_choice = Weighted({i: app.weight for i, app in enumerate(self.apps)})
        self.clock = clock
        self.warm_start_s = warm_start_s
        self.max_pending = max_pending
        self.started_at: float | None = None
        self.pending: list[tuple[float, int, Generated]] = []
        self.order = itertools.count()
        self.stories = 0
        self.stories_without_a_push = 0
        self.numbers = 0
        self.number_offset = self.rng.randrange(MOBILE_SUFFIXES)
        self.local_times: dict[int, str] = {}
        self.planners: dict[str, Callable[[App, int], Story]] = {
            TENCENT_SMS: self._sms_send,
            TENCENT_VOICE: self._voice_call,
            CDR_PLATFORM: self._cdr_platform,
            CLICK_TO_CALL: self._click_to_call,
        }

    # --- the stream ----------------------------------------------------------------------------------------
    def next(self) -> Generated:
        now = self.clock()
        if self.started_at is None:
            self.started_at = now
        while not self.pending or self.pending[0][0] > now:
            self._start_story(now)
        return heapq.heappop(self.pending)[2]

    def malformed(self) -> Generated:
        """The next push, cut short: garbage in place of what the vendor meant to send."""
        good = self.next()
        cut = self.rng.randint(1, max(1, len(good.body) - 1))
        return Generated(good.route, good.body[:cut], 0, good.key + "#broken", good.path, good.tenant)

    def _start_story(self, now: float) -> None:
        over_by = now if len(self.pending) >= self.max_pending else None
        self._tell_new_story(now - STORY_LEAD_S, over_by)
        assert self.started_at is not None
        if now - self.started_at < self.warm_start_s:  # and one that was under way when the run began
            self._tell_new_story(self.started_at - self.rng.uniform(0, self.warm_start_s), over_by)

    def _tell_new_story(self, start: float, over_by: float | None) -> None:
        """A story of the product furthest below its share of requests, for an app drawn by weight,
        starting at ``start``, or early enough to be over by ``over_by`` (every push due) when given."""
        product = self._product_below_its_share()
        app = self.apps[self.app_choice.draw(self.rng)]
        self.stories += 1
        story = self.planners[product](app, self.stories)
        if over_by is not None:
            start = min(start, over_by - story.last_event_s - PUSH_DELAY_MAX_S)
        if self._schedule(product, app, self.stories, story.tell(int(start))):
            self.stories_without_a_push = 0
        else:
            self.stories_without_a_push += 1
            if self.stories_without_a_push > MAX_STORIES_WITHOUT_A_PUSH:
                raise RuntimeError(
                    f"{MAX_STORIES_WITHOUT_A_PUSH} stories in a row had no push on the mix's routes "
                    f"({', '.join(sorted(self.routes))})"
                )

    def _product_below_its_share(self) -> str:
        total = self.planned_total + 1
        best, deficit = "", -math.inf
        for product, share in self.shares.items():
            if share * total - self.planned[product] > deficit:
                best, deficit = product, share * total - self.planned[product]
        return best

    def _schedule(self, product: str, app: App, number: int, pushes: list[Push]) -> int:
        """Queue the pushes on the mix's routes, each due after its event and after the one before it;
        how many were queued."""
        due_after = 0.0
        queued = 0
        for index, push in enumerate(pushes):
            due = due_after = max(due_after, push.at + push.delay)
            if push.route not in self.routes:
                continue
            key = f"{push.route}#{number}" if index == 0 else f"{push.route}#{number}.{index}"
            body = bytes(
                memoryview(orjson.dumps(push.body))
            )  # orjson's bytes keep its whole ~4 KB buffer; a copy keeps the body
            item = Generated(push.route, body, push.events, key, app.prefix + push.route, app.tenant.id)
            heapq.heappush(self.pending, (due, next(self.order), item))
            queued += 1
        self.planned[product] += queued
        self.planned_total += queued
        return queued

    # --- parties, ids, times ---------------------------------------------------------------------------------
    def _make_apps(self, count: int, tenants: list[Tenant]) -> list[App]:
        rng = self.rng
        return [
            App(
                tenant=tenants[i % len(tenants)],
                prefix=tenants[i % len(tenants)].prefix,
                weight=1 / (i + 1),
                platform_app_id=f"{rng.getrandbits(128):032x}",
                callback_app_id=f"14{rng.randrange(10**8):08d}",
                display_number=rng.choice(DISPLAY_AREA_CODES) + f"{rng.randrange(10**8):08d}",
                sms_sign=SMS_SIGNS[i % len(SMS_SIGNS)],
                answer_ratio=rng.uniform(*APP_ANSWER_RATIO),
                sms_delivered=rng.uniform(*APP_SMS_DELIVERED),
                fen_per_minute=rng.choice(APP_FEN_PER_MINUTE),
                records_calls=i == 0 or rng.random() < APP_RECORDS_CALLS,
                asks_for_a_key=i == 0 or rng.random() < APP_ASKS_FOR_A_KEY,
                amounts_as_numbers=rng.random() < APP_AMOUNTS_AS_NUMBERS,
            )
            for i in range(max(count, len(tenants)))
        ]

    def _mobile(self) -> str:
        """A mobile number no other party of this run has."""
        self.numbers += 1
        suffix = (
            self.numbers * MOBILE_STRIDE + self.number_offset
        ) % MOBILE_SUFFIXES + MOBILE_SUFFIXES  # a leading 1 keeps the zeros
        return MOBILE_PREFIX_TABLE[int(self.rng.random() * len(MOBILE_PREFIX_TABLE))] + str(suffix)[1:]

    def _local(self, unix: int) -> str:
        """China local time as the CDR platform and Tencent SMS write it."""
        text = self.local_times.get(unix)
        if text is None:
            if len(self.local_times) >= LOCAL_TIME_CACHE:
                self.local_times.clear()
            text = self.local_times[unix] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix + CHINA_UTC_OFFSET_S))
        return text

    def _outcome(self, app: App) -> str:
        return ANSWERED if self.rng.random() < app.answer_ratio else NOT_ANSWERED.draw(self.rng)

    def _dial(self, outcome: str, talk: LogNormal) -> Dial:
        """A leg dialled at 0: rings, then is answered and talks, or is not answered and why."""
        rng = self.rng
        if outcome in (UNREACHABLE, INVALID_NUMBER, CALL_FAILED, BUSY):  # a busy tone, an announcement or an error
            return Dial(outcome, None, None, between(rng, FAIL_AFTER_S))
        rang = between(rng, SETUP_S)
        if outcome == NO_ANSWER:
            return Dial(outcome, rang, None, rang + between(rng, NO_ANSWER_RING_S))
        if outcome == REJECTED:
            return Dial(outcome, rang, None, rang + between(rng, REJECT_AFTER_S))
        answered = rang + RING_S.seconds(rng)
        return Dial(outcome, rang, answered, answered + talk.seconds(rng))

    def _amount(self, app: App, text: str) -> Any:
        return float(text) if app.amounts_as_numbers else text  # a 2-decimal float prints as its 2 decimals

    def _count(self, app: App, value: int) -> Any:
        return value if app.amounts_as_numbers else str(value)

    # --- Tencent SMS ------------------------------------------------------------------------------------------
    def _sms_send(self, app: App, number: int) -> Story:
        """One send of 1-10 messages: one receipt array (ENROUTE for some), the final receipts of those
        later in one more, and a reply from a few of the end users."""
        rng, rand, mobile = self.rng, self.rng.random, self._mobile  # (bound once: the busiest loop of all)
        messages = []
        for i in range(between(rng, (1, SMS_REPORTS_MAX))):
            received = int(rand() * (SMS_SEND_WINDOW_S + 1))
            enroute = rand() < SMS_ENROUTE
            code = "DELIVRD" if rand() < app.sms_delivered else SMS_FAILURE_CODES.draw(rng)
            final = received + SMS_FINAL_AFTER_ENROUTE_S.seconds(rng) if enroute else received
            replied = final + SMS_REPLY_AFTER_S.seconds(rng) if code == "DELIVRD" and rand() < SMS_REPLY else None
            messages.append(Message(f"{self.tag}-{number}-{i}", mobile(), code, received, final, enroute, replied))
        later = [m for m in messages if m.enroute]

        def receipt(message: Message, at: int, code: str) -> dict[str, str]:
            return {
                "user_receive_time": self._local(at),
                "nationcode": CHINA,
                "mobile": message.mobile,
                "report_status": SMS_REPORT_STATUS.get(code, "FAIL"),
                "errmsg": code,
                "description": SMS_DESCRIPTION.get(code, SMS_FAILED_DESCRIPTION),
                "sid": message.sid,
            }

        def tell(start: int) -> list[Push]:
            first = [receipt(m, start + m.first_at, "ENROUTE" if m.enroute else m.code) for m in messages]
            pushes = [
                Push(
                    "tencent/sms-status",
                    start + max(m.first_at for m in messages),
                    SMS_RECEIPT_DELAY_S.draw(rng),
                    first,
                    len(first),
                )
            ]
            if later:
                finals = [receipt(m, start + m.final_at, m.code) for m in later]
                pushes.append(
                    Push(
                        "tencent/sms-status",
                        start + max(m.final_at for m in later),
                        SMS_RECEIPT_DELAY_S.draw(rng),
                        finals,
                        len(finals),
                    )
                )
            for m in messages:
                if m.replied_at is not None:
                    body = {
                        "extend": self.tag,
                        "mobile": m.mobile,
                        "nationcode": CHINA,
                        "sign": app.sms_sign,
                        "text": SMS_REPLY_TEXTS.draw(rng),
                        "time": start + m.replied_at,
                    }
                    pushes.append(Push("tencent/sms-reply", start + m.replied_at, SMS_RECEIPT_DELAY_S.draw(rng), body))
            return pushes

        return Story(max(m.replied_at or m.final_at for m in messages), tell)

    # --- Tencent voice ----------------------------------------------------------------------------------------
    def _voice_call(self, app: App, number: int) -> Story:
        """A voice code or prompt: a key press in some answered prompts, then the status with its fee;
        or, for a call that could not be placed, the failure instead."""
        rng = self.rng
        assert self.voice_routes is not None
        route = self.voice_routes.draw(rng)
        prompt = route == "tencent/voiceprompt"
        dial = self._dial(self._outcome(app), VOICE_PROMPT_TALK_S if prompt else VOICE_CODE_TALK_S)
        failure = rng.random() < VOICE_FAILURE_INSTEAD.get(dial.outcome, 0.0)
        code = VOICE_FAILURE_CODES[dial.outcome].draw(rng) if failure else 0
        key_at = None
        if prompt and dial.answered is not None and rng.random() < VOICE_KEY_PRESS:
            key_at = min(dial.ended, dial.answered + between(rng, VOICE_KEY_AFTER_S))
        parties = {
            "call_from": "" if prompt and rng.random() < PROMPT_WITHOUT_CALLER_ID else app.display_number,
            "callid": f"{self.tag}-{number}",
            "mobile": self._mobile(),
            "nationcode": CHINA,
        }

        def tell(start: int) -> list[Push]:
            if failure:
                body = {
                    "voice_failure_callback": {
                        **parties,
                        "failure_code": code,
                        "failure_reason": VOICE_FAILURE_TEXT[code],
                    }
                }
                return [Push(route, start + dial.ended, STATE_PUSH_DELAY_S.draw(rng), body)]
            pushes = []
            if key_at is not None:
                pushes.append(
                    Push(
                        route,
                        start + key_at,
                        STATE_PUSH_DELAY_S.draw(rng),
                        {"voicekey_callback": {**parties, "keypress": VOICE_KEYS.draw(rng)}},
                    )
                )
            status = {
                **parties,
                "result": VOICE_STATUS_RESULT[dial.outcome],
                "start_calltime": str(start),
                "accept_time": str(start + dial.answered) if dial.answered is not None else "0",
                "end_calltime": str(start + dial.ended),
                "fee": str(billed_minutes(dial.talk_s)),
            }
            pushes.append(
                Push(
                    route,
                    start + dial.ended,
                    STATE_PUSH_DELAY_S.draw(rng),
                    {"voiceprompt_callback" if prompt else "voicecode_callback": status},
                )
            )
            return pushes

        return Story(dial.ended, tell)

    # --- the CDR platform ------------------------------------------------------------------------------------
    def _cdr_platform(self, app: App, number: int) -> Story:
        kind = CDR_PLATFORM_STORIES.draw(self.rng)
        if kind == "voice code":
            return self._voice_code_cdr(app, number)
        if kind == "conference":
            return self._conference(app, number)
        return self._two_way_call(app, number)

    def _two_way_call(self, app: App, number: int) -> Story:
        """The caller is called and answers, then the callee: a state push per step
        (callout, alerting, answer, disconnect), then the fid-4 CDR."""
        rng = self.rng
        request_id, caller, called = f"{self.tag}-{number}", self._mobile(), self._mobile()
        caller_answered = between(rng, CALLER_ANSWERS_S)
        callout = caller_answered + 1
        dial = self._dial(self._outcome(app), TALK_S)
        state_desc = STATE_DESC[dial.outcome].draw(rng)
        recorded = app.records_calls and dial.answered is not None
        custom = f"order-{number}"
        end = callout + dial.ended

        def tell(start: int) -> list[Push]:
            def state(name: str, at: int) -> Push:
                body = {
                    "requestid": request_id,
                    "src": caller,
                    "dsc": called,
                    "timestamp": self._local(start + at),
                    "state": name,
                }
                return Push("cdr-push", start + at, STATE_PUSH_DELAY_S.draw(rng), body)

            pushes = [state("callout", callout)]
            if dial.rang is not None:
                pushes.append(state("alerting", callout + dial.rang))
            if dial.answered is not None:
                pushes.append(state("answer", callout + dial.answered))
            pushes.append(state("disconnect", end))
            answered = "" if dial.answered is None else self._local(start + callout + dial.answered) + ".000"
            cdr = {
                "requestid": request_id,
                "appid": app.platform_app_id,
                "fid": self._count(app, 4),
                "caller": caller,
                "called": called,
                "callerstime": self._local(start + caller_answered) + ".000",
                "calleretime": self._local(start + end) + ".000",
                "calledstime": answered,
                "calledetime": self._local(start + end) + ".000" if answered else "",
                "tapesurl": f"{RECORDING_HOST}/{app.platform_app_id}/{request_id}.mp3" if recorded else "NoTapes",
                "duration": self._count(app, dial.talk_s),
                "oriamount": self._amount(app, yuan(billed_minutes(dial.talk_s) * app.fen_per_minute)),
                "stateDesc": state_desc,
                "customParm": custom,
            }
            pushes.append(Push("cdr-push", start + end, CDR_PUSH_DELAY_S.draw(rng), {"cdr": [cdr]}))
            return pushes

        return Story(end, tell)

    def _voice_code_cdr(self, app: App, number: int) -> Story:
        """A voice code the callee answered: one fid-2 CDR after the call."""
        rng = self.rng
        answered = between(rng, SETUP_S) + RING_S.seconds(rng)
        talk = VOICE_CODE_TALK_S.seconds(rng)
        tel = self._mobile()

        def tell(start: int) -> list[Push]:
            cdr = {
                "requestid": f"{self.tag}-{number}",
                "appid": app.platform_app_id,
                "fid": self._count(app, 2),
                "tel": tel,
                "stime": self._local(start + answered) + ".000",
                "etime": self._local(start + answered + talk) + ".000",
                "duration": self._count(app, talk),
                "oriamount": self._amount(app, yuan(billed_minutes(talk) * app.fen_per_minute)),
            }
            return [Push("cdr-push", start + answered + talk, CDR_PUSH_DELAY_S.draw(rng), {"cdr": [cdr]})]

        return Story(answered + talk, tell)

    def _conference(self, app: App, number: int) -> Story:
        """A conference: one fid-5 CDR per participant leg, all pushed together when it ends."""
        rng = self.rng
        legs = []
        for _ in range(between(rng, CONFERENCE_PARTIES)):
            joined = between(rng, CONFERENCE_JOIN_S)
            legs.append((self._mobile(), joined, joined + CONFERENCE_LEG_S.seconds(rng)))
        end = max(left for _, _, left in legs)
        tapes = f"{RECORDING_HOST}/{app.platform_app_id}/conf-{number}.mp3" if app.records_calls else "NoTapes"

        def tell(start: int) -> list[Push]:
            cdrs = [
                {
                    "requestid": f"{self.tag}-{number}-{i}",
                    "appid": app.platform_app_id,
                    "fid": self._count(app, 5),
                    "tel": tel,
                    "stime": self._local(start + joined) + ".000",
                    "etime": self._local(start + left) + ".000",
                    "confid": f"{number:06d}",
                    "duration": self._count(app, left - joined),
                    "singleoriamount": self._amount(app, yuan(billed_minutes(left - joined) * app.fen_per_minute)),
                    "customParm": f"meeting-{number}",
                    "tapesurl": tapes,
                }
                for i, (tel, joined, left) in enumerate(legs)
            ]
            return [Push("cdr-push", start + end, CDR_PUSH_DELAY_S.draw(rng), {"cdr": cdrs}, len(cdrs))]

        return Story(end, tell)

    # --- click-to-call ----------------------------------------------------------------------------------------
    def _click_to_call(self, app: App, number: int) -> Story:
        """The platform calls the caller, then (after a key press, where the app asks for one) the
        callee: status pushes per leg, key presses, the hang-up CDR, a recording of some answered calls."""
        rng = self.rng
        call_id = f"{self.tag}-{number}"
        common = {
            "appId": app.callback_app_id,
            "callId": call_id,
            "requestId": f"r{number}",
            "src": "0086" + self._mobile(),
            "dst": "0086" + self._mobile(),
        }
        caller_outcome = ANSWERED if rng.random() < CALLER_ANSWERED else CALLER_NOT_ANSWERED.draw(rng)
        caller = self._dial(caller_outcome, TALK_S)
        states: list[tuple[int, str, str, str | None]] = self._leg_states("src", 0, caller)
        keys: list[tuple[int, str]] = []
        callee: Dial | None = None
        dialled = 0
        end = caller.ended
        if caller.answered is not None:
            dialled = caller.answered + 1
            if app.asks_for_a_key:
                pressed = caller.answered + between(rng, KEY_PROMPT_S)
                if rng.random() < KEY_REPLAY:
                    keys.append((pressed, "2"))
                    pressed += between(rng, KEY_PROMPT_S)
                keys.append((pressed, "1"))
                dialled = pressed + 1
            callee = self._dial(self._outcome(app), TALK_S)
            states += self._leg_states("dst", dialled, callee)
            end = dialled + callee.ended
            states.append((end, "src", "disaccept", None))  # the caller's leg ends with the callee's
        recorded = app.records_calls and callee is not None and callee.answered is not None
        record_url = f"{RECORDING_HOST}/{app.callback_app_id}/{call_id}.mp3" if recorded else ""
        end_status = CALLER_END_STATUS[caller.outcome] if callee is None else CALLEE_END_STATUS[callee.outcome]

        def at(offset: int | None, start: int) -> str:
            return "0" if offset is None else str(start + offset)

        def tell(start: int) -> list[Push]:
            timeline: list[tuple[int, Push]] = []
            for offset, flag, word, error in states:
                body = {
                    **common,
                    "userFlag": flag,
                    "callStatus": word,
                    "timeStamp": str(start + offset),
                    "callType": CALL_TYPE,
                }
                if error is not None:
                    body["errorCode"] = error
                timeline.append(
                    (offset, Push("callback-call/status", start + offset, STATE_PUSH_DELAY_S.draw(rng), body))
                )
            for offset, key in keys:
                body = {
                    "appId": common["appId"],
                    "callId": call_id,
                    "requestId": common["requestId"],
                    "phone": common["src"],
                    "key": key,
                    "timeStamp": str(start + offset),
                }
                timeline.append(
                    (offset, Push("callback-call/keypress", start + offset, STATE_PUSH_DELAY_S.draw(rng), body))
                )
            timeline.sort(key=lambda entry: entry[0])  # stable: a leg's states keep their order
            pushes = [push for _, push in timeline]
            answered = None if callee is None or callee.answered is None else dialled + callee.answered
            cdr = {
                **common,
                "startSrcCallTime": str(start),
                "startSrcRingTime": at(caller.rang, start),
                "srcAcceptTime": at(caller.answered, start),
                "startDstCallTime": at(dialled if callee else None, start),
                "startDstRingTime": at(None if callee is None or callee.rang is None else dialled + callee.rang, start),
                "dstAcceptTime": at(answered, start),
                "endCallTime": str(start + end),
                "callEndStatus": end_status,
                "duration": str(callee.talk_s if callee else 0),
                "recordUrl": record_url,
                "callType": CALL_TYPE,
            }
            pushes.append(Push("callback-call/hangup", start + end, CDR_PUSH_DELAY_S.draw(rng), cdr))
            if recorded:
                body = {
                    "appId": common["appId"],
                    "callId": call_id,
                    "requestId": common["requestId"],
                    "recordUrl": record_url,
                    "callType": CALL_TYPE,
                }
                pushes.append(Push("callback-call/record", start + end, RECORDING_DELAY_S.draw(rng), body))
            return pushes

        return Story(end, tell)

    @staticmethod
    def _leg_states(flag: str, dialled: int, dial: Dial) -> list[tuple[int, str, str, str | None]]:
        """A leg's status pushes (offset, userFlag, callStatus, errorCode); an answered leg's hang-up is
        pushed when the call ends, for the callee here and for the caller by the caller of this."""
        states: list[tuple[int, str, str, str | None]] = [(dialled, flag, "invite", None)]
        if dial.rang is not None:
            states.append((dialled + dial.rang, flag, "ringing", None))
        if dial.answered is not None:
            states.append((dialled + dial.answered, flag, "answered", None))
            if flag == "dst":
                states.append((dialled + dial.ended, flag, "disaccept", None))
        else:
            word = "refused" if dial.outcome in (BUSY, REJECTED) else "failed"
            states.append((dialled + dial.ended, flag, word, SIP_CODE[dial.outcome]))
        return states


def tenants_for(ids: Sequence[str], secrets: Sequence[str], tenants_file: str = "") -> tuple[list[Tenant], list[str]]:
    """The tenants to send as, and the ids of those skipped: ``--tenant``/``--secret`` pairs if given,
    else every tenant of the tenants file with a plain secret (one kept only as a digest has no URL we
    can build), else none (the tenant-less routes). Raises ValueError with a message for the user."""
    if ids or secrets:
        if len(ids) != len(secrets):
            raise ValueError(f"give one --secret per --tenant ({len(ids)} tenants, {len(secrets)} secrets)")
        return [tenant(tenant_id, secret) for tenant_id, secret in zip(ids, secrets, strict=True)], []
    if not tenants_file:
        return [], []
    usable, skipped = tenants_from_file(tenants_file)
    if not usable:
        raise ValueError(f"no tenant of {tenants_file} has a plain secret (secret or secrets) to build its URLs from")
    return usable, skipped


def tenants_from_file(path: str | Path) -> tuple[list[Tenant], list[str]]:
    """(tenants with a plain secret, the first of their list; ids of those with only a digest). The file
    is checked as the edge checks it, so a file the edge would refuse is refused here too."""
    from ringback.edge import tenants as edge_tenants

    edge_tenants.load(Path(path))
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    usable, skipped = [], []
    for entry in data.get("tenants", []):
        secrets = [entry["secret"]] if "secret" in entry else list(entry.get("secrets", []))
        if secrets:
            usable.append(Tenant(entry["id"], secrets[0]))
        else:
            skipped.append(entry["id"])
    return usable, skipped


def tenant(tenant_id: str, secret: str) -> Tenant:
    """A tenant from the command line, checked as the edge would (id pattern, secret usable in a URL)."""
    from ringback.edge.tenants import TENANT_ID

    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must match [a-z0-9_-]{{1,64}}")
    if not secret or "/" in secret or secret != secret.strip():
        raise ValueError(f"the secret of tenant {tenant_id!r} must be non-empty, without '/' or surrounding spaces")
    return Tenant(tenant_id, secret)


@dataclass
class Summary:
    tag: str
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    resends: int = 0
    malformed: int = 0
    expected_events: int = (
        0  # unique events the accepted well-formed bodies normalize to, with the run tag in a vendor id
    )
    expected_replies: int = 0  # the same for SMS replies, with the run tag in attributes['extend'] (see TAG_IN_EXTEND)
    by_route: Counter[str] = field(default_factory=Counter)
    by_tenant: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    accepted_at: dict[str, float] = field(default_factory=dict)  # body key -> wall time of its first success
    #: Keys sent more than once: when their row became queryable depends on which copy arrived first.
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
            "tag": self.tag,
            "sent": self.sent,
            "accepted": self.accepted,
            "failed": self.failed,
            "resends": self.resends,
            "malformed": self.malformed,
            "expected_events": self.expected_events,
            "expected_replies": self.expected_replies,
            "rate_per_s": round(self.rate, 1),
            "latency_ms": {f"p{p}": round(self.percentile(p) * 1000, 2) for p in (50, 90, 99, 100)},
            "by_route": dict(self.by_route),
            "by_tenant": dict(self.by_tenant),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }

    def render(self) -> str:
        lines = [
            (
                f"loadgen {self.tag}: sent {self.sent} in {self.elapsed_s:.1f}s ({self.rate:.0f}/s), accepted "
                f"{self.accepted}, failed {self.failed}"
            ),
            (
                f"  resends {self.resends}, malformed {self.malformed}, unique events expected {self.expected_events} "
                f"(and SMS replies {self.expected_replies})"
            ),
            "  latency ms: " + "  ".join(f"p{p} {self.percentile(p) * 1000:.1f}" for p in (50, 90, 99, 100)),
            "  statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())),
            "  routes: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.by_route.items())),
        ]
        if any(self.by_tenant):
            lines.append("  tenants: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.by_tenant.items())))
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
    tenants: list[Tenant] = field(default_factory=list)  # none: the tenant-less routes
    apps: int = DEFAULT_APPS


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        route, _, weight = part.partition("=")
        if route.strip() not in DEFAULT_MIX:
            raise ValueError(f"unknown route {route!r}; known: {', '.join(DEFAULT_MIX)}")
        mix[route.strip()] = int(weight or 1)
    return mix


async def run(plan: LoadPlan, show_progress: bool = True) -> Summary:
    maker = TrafficMaker(plan.tag, plan.mix, plan.seed, tenants=plan.tenants, apps=plan.apps)
    summary = Summary(tag=plan.tag)
    sent_ok: list[Generated] = []  # the last RESEND_WINDOW well-formed bodies accepted
    remembered = 0
    counted: set[str] = set()
    deadline = time.monotonic() + plan.duration_s if not plan.requests else float("inf")
    issued = 0
    start = time.monotonic()
    progress = _progress(show_progress, plan)

    def next_body() -> Generated | float | None:
        """The next body to send; a float: wait until that monotonic time; None: done."""
        nonlocal issued
        if (plan.requests and issued >= plan.requests) or time.monotonic() >= deadline:
            return None
        if plan.rate:
            due = start + issued / plan.rate
            if due > time.monotonic():
                return due
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

    def remember_for_resends(item: Generated) -> None:
        nonlocal remembered
        if len(sent_ok) < RESEND_WINDOW:
            sent_ok.append(item)
        else:
            sent_ok[remembered % RESEND_WINDOW] = item
        remembered += 1

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
            if isinstance(item, float):
                await asyncio.sleep(max(0.0, item - time.monotonic()))
                continue
            began = time.perf_counter()
            try:
                status, _ = await connection.post(item.path, item.body)
            except HttpError:
                status = 0
            summary.latencies_s.append(time.perf_counter() - began)
            summary.sent += 1
            summary.statuses[status] += 1
            summary.by_route[item.route] += 1
            summary.by_tenant[item.tenant] += 1
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
                        remember_for_resends(item)
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
            TextColumn("[bold]loadgen"),
            BarColumn(),
            TextColumn("{task.description} sent"),
            TextColumn("{task.fields[rate]:>8.0f}/s"),
            TimeElapsedColumn(),
            transient=False,
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
            self.progress.update(
                self.task,
                completed=completed,
                rate=self.count / elapsed if elapsed else 0.0,
                description=f"{self.count}",
            )

    def stop(self) -> None:
        self.progress.stop()


def _progress(show: bool, plan: LoadPlan) -> _LiveProgress | None:
    return _LiveProgress(plan) if show else None
