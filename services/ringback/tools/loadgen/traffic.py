"""The stream of pushes: stories of each product in its share of the mix, each push sent when its time comes."""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import orjson

from ringback.tools.loadgen.calls import PUSH_DELAY_MAX_S
from ringback.tools.loadgen.cdr_platform import cdr_platform
from ringback.tools.loadgen.click_to_call import click_to_call
from ringback.tools.loadgen.draws import Weighted
from ringback.tools.loadgen.leakage import Leakage
from ringback.tools.loadgen.parties import ANONYMOUS, DEFAULT_APPS, App, Tenant, make_apps
from ringback.tools.loadgen.story import Push, Story, StoryKit
from ringback.tools.loadgen.tencent_sms import sms_send
from ringback.tools.loadgen.tencent_voice import voice_call

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

#: A story starts this long before the moment it is told, so that its first push is (nearly) due.
STORY_LEAD_S = 4
#: For this long after it starts, the generator also tells a story that began up to this long before
#: it started: the run opens on traffic already under way (calls that end, CDRs that arrive from the
#: first second), not on a cold start where only short calls finish.
WARM_START_S = 180.0
#: A bound on the pushes waiting for their time. Beyond it, a new story is told at once: it has
#: already happened (its times in the past, its pushes in order, each due now).
MAX_PENDING_PUSHES = 20_000
#: A mix whose routes no story reaches is an error, not a hang.
MAX_STORIES_WITHOUT_A_PUSH = 100_000


@dataclass(slots=True)
class Generated:
    route: str
    body: bytes
    events: int  # events this body normalizes to (0 for malformed bodies)
    key: str  # identity of the body for resend accounting
    path: str = ""  # where it is posted: /callbacks/{route}, or under the tenant's URL
    tenant: str = ""


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
        leakage: Leakage | None = None,
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
        self.apps = make_apps(self.rng, max(1, apps), list(tenants) or [ANONYMOUS])
        self.app_choice = Weighted({i: app.weight for i, app in enumerate(self.apps)})
        self.clock = clock
        self.warm_start_s = warm_start_s
        self.max_pending = max_pending
        self.started_at: float | None = None
        self.pending: list[tuple[float, int, Generated]] = []
        self.order = itertools.count()
        self.stories = 0
        self.stories_without_a_push = 0
        self.kit = StoryKit(self.rng, tag, leakage)
        self.planners: dict[str, Callable[[App, int], Story]] = {
            TENCENT_SMS: partial(sms_send, self.kit),
            CDR_PLATFORM: partial(cdr_platform, self.kit),
            CLICK_TO_CALL: partial(click_to_call, self.kit),
        }
        if self.voice_routes is not None:
            self.planners[TENCENT_VOICE] = partial(voice_call, self.kit, self.voice_routes)

    # --- the stream ----------------------------------------------------------------------------------------
    def next(self) -> Generated:
        now = self.clock()
        if self.started_at is None:
            self.started_at = now
        while not self.pending or self.pending[0][0] > now:
            self._start_story(now)
        due, _, item = heapq.heappop(self.pending)
        self.kit.leakage.sent_until = max(self.kit.leakage.sent_until, due)
        return item

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
