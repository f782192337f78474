"""Hostile request bodies of a chosen size: the shapes that make a careless parser slow.

Each shape is a function ``(route, size) -> bytes`` that builds a body of about ``size`` bytes, shaped
for the route's envelope where that matters (an SMS array, ``{"cdr":[...]}``, a voice wrapper, a
click-to-call object), so the whole adapter path runs, not only the JSON reader.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

Shape = Callable[[str, int], bytes]

# One field of every kind the adapters read (ids, numbers, times, amounts, status codes), so that a
# long value reaches every reader.
READ_FIELDS = (
    "sid", "mobile", "nationcode", "report_status", "errmsg", "description", "user_receive_time",
    "callid", "result", "start_calltime", "accept_time", "end_calltime", "fee", "call_from",
    "requestid", "appid", "tel", "stime", "etime", "duration", "oriamount", "caller", "called", "stateDesc",
    "callId", "status", "callStatus", "userFlag", "timeStamp", "src", "dst", "key", "phone", "recordUrl",
)

SMS_REPORT = {
    "user_receive_time": "2026-11-21 08:00:00", "nationcode": "86", "mobile": "13800138000",
    "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "ok", "sid": "s",
}
VOICE_REPORT = {
    "result": "0", "accept_time": "1763704990", "call_from": "075583763333", "callid": "c", "end_calltime": "1763705010",
    "fee": "1", "mobile": "13800138000", "nationcode": "86", "start_calltime": "1763704980",
}
CDR_REPORT = {
    "requestid": "r", "appid": "a", "fid": "4", "caller": "13810603954", "called": "18810207016",
    "callerstime": "2026-11-21 11:19:36.000", "calleretime": "2026-11-21 11:20:36.000", "calledstime": "2026-11-21 11:19:40.000",
    "calledetime": "2026-11-21 11:20:40.000", "tapesurl": "NoTapes", "duration": "60", "oriamount": "2.94", "stateDesc": "正常",
}
CALLBACK_REPORT = {
    "callId": "c", "requestId": "q", "src": "008613631686024", "dst": "008613800138000", "status": "4", "timeStamp": "1763704800",
    "callEndStatus": "1", "duration": "61", "recordUrl": "https://r.example.com/x.mp3", "key": "1", "phone": "008613631686024",
}


def report_for(route: str) -> dict[str, str]:
    if route == "tencent/sms-status":
        return dict(SMS_REPORT)
    if route.startswith("tencent/"):
        return dict(VOICE_REPORT)
    if route == "cdr-push":
        return dict(CDR_REPORT)
    return dict(CALLBACK_REPORT)


def _is_voice(route: str) -> bool:
    return route.startswith("tencent/") and route != "tencent/sms-status"


def opening(route: str) -> bytes:
    """The route's envelope up to the first report's members."""
    if route == "cdr-push":
        return b'{"cdr":[{'
    if _is_voice(route):
        return b'{"' + route.split("/")[1].encode() + b'_callback":{'
    return b"[{"


def closing(route: str) -> bytes:
    return b"}]}" if route == "cdr-push" else b"}}" if _is_voice(route) else b"}]"


def one_object(route: str, members: bytes) -> bytes:
    """A report object with the given member text (``"k":"v",…``), inside the route's envelope."""
    return opening(route) + members + closing(route)


def escaped_quotes(route: str, size: int) -> bytes:
    return opening(route) + b'"sid":"' + b'\\"' * (size // 2)  # never closed


def many_quotes(route: str, size: int) -> bytes:
    return b'"' * size


def long_strings(route: str, size: int) -> bytes:
    each = max(1, size // len(READ_FIELDS))
    return one_object(route, b",".join(b'"%s":"%s"' % (name.encode(), b"1" * each) for name in READ_FIELDS))


def unterminated_string(route: str, size: int) -> bytes:
    return opening(route) + b'"sid":"' + b"a" * size


def many_keys(route: str, size: int) -> bytes:
    fields = orjson.dumps(report_for(route))[1:-1]
    count = size // len(b'"k000000":"v",')
    return one_object(route, fields + b"," + b",".join(b'"k%06d":"v"' % i for i in range(count)))


def duplicate_keys(route: str, size: int) -> bytes:
    fields = orjson.dumps(report_for(route))[1:-1]
    return one_object(route, fields + b"," + b",".join([b'"k":"v"', b'"K":"v"'] * (size // 16)))


def missing_comma_chain(route: str, size: int) -> bytes:
    fields = orjson.dumps(report_for(route))[1:-1]
    return one_object(route, fields + b"," + b" ".join(b'"k%06d":"v"' % i for i in range(size // 14)))


def missing_comma_chain_broken(route: str, size: int) -> bytes:
    """Every gap repairable but the document still invalid at its very end."""
    return missing_comma_chain(route, size)[:-1]


def padded_keys(route: str, size: int) -> bytes:
    fields = orjson.dumps(report_for(route))[1:-1]
    return one_object(route, fields + b"," + b",".join(b'" k%06d ":"v"' % i for i in range(size // 16)))


def padded_key_lookalikes(route: str, size: int) -> bytes:
    """Whitespace beside quotes everywhere, a key nowhere."""
    return b'[" ' + b'" , " ' * (size // 6) + b'"'


def deep_nesting(route: str, size: int) -> bytes:
    return b"[" * size


def deep_valid_nesting(route: str, size: int) -> bytes:
    depth = 1000  # within what a C parser accepts; far deeper than any vendor nests
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    fields = orjson.dumps(report_for(route))[1:-1]
    return one_object(route, fields + b',"x":' + inner + b',"y":"' + b"p" * max(0, size - len(inner)) + b'"')


def many_reports(route: str, size: int) -> bytes:
    report = report_for(route)
    one = len(orjson.dumps(report)) + 1
    reports = []
    for i in range(max(1, size // one)):
        item = dict(report)
        for name in ("sid", "callid", "requestid", "callId"):
            if name in item:
                item[name] = f"{name}-{i}"
        reports.append(item)
    if _is_voice(route):  # one report per request: its many keys instead
        return one_object(route, orjson.dumps({**report, **{f"x{i}": "v" for i in range(size // 12)}})[1:-1])
    if route == "cdr-push":
        return b'{"cdr":' + orjson.dumps(reports) + b"}"
    return orjson.dumps(reports)


SHAPES: dict[str, Shape] = {
    "escaped_quotes": escaped_quotes,
    "many_quotes": many_quotes,
    "long_strings": long_strings,
    "unterminated_string": unterminated_string,
    "many_keys": many_keys,
    "duplicate_keys": duplicate_keys,
    "missing_comma_chain": missing_comma_chain,
    "missing_comma_chain_broken": missing_comma_chain_broken,
    "padded_keys": padded_keys,
    "padded_key_lookalikes": padded_key_lookalikes,
    "deep_nesting": deep_nesting,
    "deep_valid_nesting": deep_valid_nesting,
    "many_reports": many_reports,
}
