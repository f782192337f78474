"""Who sends and who is called: tenants and their URLs, customer applications, mobile numbers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote

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


def make_apps(rng: random.Random, count: int, tenants: list[Tenant]) -> list[App]:
    """``count`` applications (at least one per tenant), app i of weight 1/(i+1)."""
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
