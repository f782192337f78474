"""The end-to-end stage's traffic as one wrk Lua script: unique callbacks in a fixed mix.

Every request's vendor ids are built from the run's tag, wrk's thread and a per-thread counter, so
no two requests normalize to the same event and dedup collapses nothing; the tag also finds the
run's rows in the store. The SMS receipts' mobile numbers come from the counter too, spread over all
of China's 700,000 mobile segments as real recipients are: a run that repeats a few numbers would hide
what a new number costs. Bodies have the shapes of the golden fixtures (tests/fixtures/<format>/).
Out of every 20 requests: 10 Tencent SMS receipt arrays of three, 4 CDR pushes (a two-way call's
fid-4 CDR and an `answer` state push, alternately), 3 Tencent voice codes and 3 click-to-call
hang-ups: 2.0 events per callback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

ID = "@ID@"  # where the request's unique id goes
MOBILE = "@MOBILE@"  # where the request's mobile number goes (always 11 digits)
MOBILE_DIGITS = 11


@dataclass(frozen=True)
class Kind:
    route: str
    body: object  # JSON with ID in its vendor ids
    share: int  # requests out of every CYCLE
    events: int  # events one request normalizes to


KINDS = (
    Kind(
        "tencent/sms-status",
        [
            {
                "user_receive_time": "2026-11-21 08:00:01",
                "nationcode": "86",
                "mobile": MOBILE,
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "用户短信送达成功",
                "sid": f"{ID}-0",
            },
            {
                "user_receive_time": "2026-11-21 08:00:02",
                "nationcode": "86",
                "mobile": MOBILE,
                "report_status": "FAIL",
                "errmsg": "UNDELIV",
                "description": "用户短信未送达",
                "sid": f"{ID}-1",
            },
            {
                "user_receive_time": "2026-11-21 08:00:03",
                "nationcode": "86",
                "mobile": MOBILE,
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "用户短信送达成功",
                "sid": f"{ID}-2",
            },
        ],
        10,
        3,
    ),
    Kind(
        "cdr-push",
        {
            "cdr": [
                {
                    "requestid": ID,
                    "appid": "ff8080813fc70a7b013fc72312324213",
                    "fid": "4",
                    "caller": "13810603954",
                    "called": "18810207016",
                    "callerstime": "2026-11-21 11:19:36.000",
                    "calleretime": "2026-11-21 11:20:36.000",
                    "calledstime": "2026-11-21 11:19:40.000",
                    "calledetime": "2026-11-21 11:20:36.000",
                    "tapesurl": "NoTapes",
                    "duration": "56",
                    "oriamount": "0.10",
                    "stateDesc": "正常",
                    "customParm": "order-1",
                }
            ]
        },
        2,
        1,
    ),
    Kind(
        "cdr-push",
        {
            "requestid": ID,
            "src": "13810603954",
            "dsc": "18810207016",
            "timestamp": "2026-11-21 11:19:40",
            "state": "answer",
        },
        2,
        1,
    ),
    Kind(
        "tencent/voicecode",
        {
            "voicecode_callback": {
                "result": "0",
                "accept_time": "1763704805",
                "call_from": "075583763333",
                "callid": ID,
                "end_calltime": "1763704843",
                "fee": "1",
                "mobile": "13800138000",
                "nationcode": "86",
                "start_calltime": "1763704801",
            }
        },
        3,
        1,
    ),
    Kind(
        "callback-call/hangup",
        {
            "callId": ID,
            "requestId": f"r{ID}",
            "src": "008613631686024",
            "dst": "008613800138000",
            "startSrcCallTime": "2026-11-21 14:00:00",
            "startSrcRingTime": "2026-11-21 14:00:01",
            "srcAcceptTime": "2026-11-21 14:00:03",
            "startDstCallTime": "2026-11-21 14:00:04",
            "startDstRingTime": "2026-11-21 14:00:05",
            "dstAcceptTime": "2026-11-21 14:00:09",
            "endCallTime": "2026-11-21 14:01:35",
            "callEndStatus": "1",
            "duration": "86",
            "recordUrl": "",
        },
        3,
        1,
    ),
)
CYCLE = sum(kind.share for kind in KINDS)
EVENTS_PER_CALLBACK = sum(kind.share * kind.events for kind in KINDS) / CYCLE
EVENTS_PER_ROUTE = {kind.route: kind.events for kind in KINDS}


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError("a body cannot be put in the wrk script")
    return f"[==[{text}]==]"


def _lua_request(kind: Kind, host: str) -> str:
    """A Lua expression for the whole request around ``id`` (whose length is ``n``) and ``mobile``: one
    concatenation, the Content-Length counted from the fixed parts and the markers' occurrences."""
    parts = re.split(f"({ID}|{MOBILE})", orjson.dumps(kind.body).decode())
    texts, markers = parts[0::2], parts[1::2]
    fixed = sum(len(text.encode()) for text in texts) + MOBILE_DIGITS * markers.count(MOBILE)
    # A quoted Lua string: a long bracket would turn each CR LF into LF.
    head = (
        f'"POST /callbacks/{kind.route} HTTP/1.1\\r\\nHost: {host}\\r\\nContent-Type: application/json\\r\\n'
        'Content-Length: "'
    )
    body = " .. ".join(_lua_string(part) if i % 2 == 0 else _LUA_VALUE[part] for i, part in enumerate(parts))
    return f"{head} .. ({fixed} + {markers.count(ID)} * n) .. '\\r\\n\\r\\n' .. {body}"


_LUA_VALUE = {ID: "id", MOBILE: "mobile"}


def script(tag: str, host: str) -> str:
    """The Lua script: ``setup`` numbers wrk's threads, ``request`` builds each request as raw HTTP
    (wrk.format, a table of headers walked per request, costs more than the rest of wrk's work on a
    request); ``host`` is the Host header, ``127.0.0.1:8080``."""
    if not tag.isalnum() or not all(c.isalnum() or c in ".:-[]" for c in host):
        raise ValueError("the tag must be letters and digits, the host a host and port")
    branches = []
    upto = 0
    for kind in KINDS:
        upto += kind.share
        branches.append(f"if slot < {upto} then return {_lua_request(kind, host)}")
    return "\n".join(
        [
            "local threads = 0",
            "function setup(thread)",
            "  thread:set('thread_id', threads)",
            "  threads = threads + 1",
            "end",
            "local prefix",
            "function init(args)",
            f"  prefix = '{tag}t' .. thread_id .. 'n'",
            "end",
            "local counter = 0",
            "function request()",
            "  counter = counter + 1",
            "  local id = prefix .. counter",
            "  local n = #id",
            # 1, a digit 3-9, nine more: the counter times a prime spreads the segments (the next five)
            "  local spread = (counter * 7919 + thread_id * 104729) % 1000000000",
            "  local mobile = string.format('1%d%09d', 3 + counter % 7, spread)",
            f"  local slot = counter % {CYCLE}",
            "  " + "\n  else".join(branches),
            "  end",
            "end",
            "",
        ]
    )
