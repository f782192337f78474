"""Hostile request bodies of a chosen size: the shapes that make a careless parser slow.

Each shape is a function ``(envelope, size) -> bytes`` that builds a body of about ``size`` bytes inside
an ``Envelope``: one kind of body a route receives (an SMS array, ``{"cdr":[...]}``, each Tencent voice
wrapper on each voice route, an SMS reply, a click-to-call object), so the whole adapter path of every
body kind runs, not only the JSON reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

# One field of every kind the adapters read (ids, numbers, times, amounts, status codes, texts), so that
# a long value reaches every reader.
READ_FIELDS = (
    "sid",
    "mobile",
    "nationcode",
    "report_status",
    "errmsg",
    "description",
    "user_receive_time",
    "callid",
    "result",
    "start_calltime",
    "accept_time",
    "end_calltime",
    "fee",
    "call_from",
    "keypress",
    "failure_code",
    "failure_reason",
    "extend",
    "sign",
    "text",
    "time",
    "requestid",
    "appid",
    "tel",
    "stime",
    "etime",
    "duration",
    "oriamount",
    "caller",
    "called",
    "stateDesc",
    "callId",
    "status",
    "callStatus",
    "userFlag",
    "timeStamp",
    "src",
    "dst",
    "key",
    "phone",
    "recordUrl",
)

SMS_REPORT = {
    "user_receive_time": "2026-11-21 08:00:00",
    "nationcode": "86",
    "mobile": "13800138000",
    "report_status": "SUCCESS",
    "errmsg": "DELIVRD",
    "description": "ok",
    "sid": "s",
}
VOICE_PARTIES = {"call_from": "075583763333", "callid": "c", "mobile": "13800138000", "nationcode": "86"}
VOICE_REPORTS = {
    "voicecode_callback": {
        **VOICE_PARTIES,
        "result": "0",
        "accept_time": "1763704990",
        "end_calltime": "1763705010",
        "fee": "1",
        "start_calltime": "1763704980",
    },
    "voiceprompt_callback": {
        **VOICE_PARTIES,
        "result": "0",
        "accept_time": "1763704990",
        "end_calltime": "1763705010",
        "fee": "1",
        "start_calltime": "1763704980",
    },
    "voicekey_callback": {**VOICE_PARTIES, "keypress": "1"},
    "voice_failure_callback": {**VOICE_PARTIES, "failure_code": 8, "failure_reason": "空号"},
}
SMS_REPLY = {
    "extend": "",
    "mobile": "13800138000",
    "nationcode": "86",
    "sign": "腾讯云",
    "text": "退订",
    "time": 1763704800,
}
CDR_REPORT = {
    "requestid": "r",
    "appid": "a",
    "fid": "4",
    "caller": "13810603954",
    "called": "18810207016",
    "callerstime": "2026-11-21 11:19:36.000",
    "calleretime": "2026-11-21 11:20:36.000",
    "calledstime": "2026-11-21 11:19:40.000",
    "calledetime": "2026-11-21 11:20:40.000",
    "tapesurl": "NoTapes",
    "duration": "60",
    "oriamount": "2.94",
    "stateDesc": "正常",
}
CALLBACK_REPORT = {
    "callId": "c",
    "requestId": "q",
    "src": "008613631686024",
    "dst": "008613800138000",
    "status": "4",
    "timeStamp": "1763704800",
    "callEndStatus": "1",
    "duration": "61",
    "recordUrl": "https://r.example.com/x.mp3",
    "key": "1",
    "phone": "008613631686024",
}
ID_FIELDS = ("sid", "callid", "requestid", "callId")  # made distinct per report of a many-report body


@dataclass(frozen=True)
class Envelope:
    """One kind of body a route receives: what comes before and after its report(s), and a readable report."""

    name: str
    route: str
    prefix: bytes  # before the report object, or before the array of reports
    suffix: bytes
    report: dict[str, Any]
    array: bool  # the reports come in an array

    def opening(self) -> bytes:
        """The envelope up to the first report's members."""
        return self.prefix + (b"[{" if self.array else b"{")

    def closing(self) -> bytes:
        return (b"}]" if self.array else b"}") + self.suffix

    def one_object(self, members: bytes) -> bytes:
        """A report object with the given member text (``"k":"v",…``), inside the envelope."""
        return self.opening() + members + self.closing()

    def members(self) -> bytes:
        """The readable report's member text."""
        return orjson.dumps(self.report)[1:-1]


Shape = Callable[[Envelope, int], bytes]
VOICE_ROUTES = ("tencent/voicecode", "tencent/voiceprompt")
ENVELOPES = [
    Envelope("sms-status", "tencent/sms-status", b"", b"", SMS_REPORT, array=True),
    *(
        Envelope(f"{route.split('/')[1]}:{wrapper}", route, b'{"' + wrapper.encode() + b'":', b"}", report, array=False)
        for route in VOICE_ROUTES
        for wrapper, report in VOICE_REPORTS.items()
    ),
    Envelope("sms-reply", "tencent/sms-reply", b"", b"", SMS_REPLY, array=False),
    Envelope("sms-reply:array", "tencent/sms-reply", b"", b"", SMS_REPLY, array=True),
    Envelope("cdr-push", "cdr-push", b'{"cdr":', b"}", CDR_REPORT, array=True),
    *(
        Envelope(route, route, b"", b"", CALLBACK_REPORT, array=True)
        for route in ("callback-call/status", "callback-call/hangup", "callback-call/record", "callback-call/keypress")
    ),
]


def escaped_quotes(envelope: Envelope, size: int) -> bytes:
    return envelope.opening() + b'"sid":"' + b'\\"' * (size // 2)  # never closed


def many_quotes(envelope: Envelope, size: int) -> bytes:
    return b'"' * size


def long_strings(envelope: Envelope, size: int) -> bytes:
    each = max(1, size // len(READ_FIELDS))
    return envelope.one_object(b",".join(b'"%s":"%s"' % (name.encode(), b"1" * each) for name in READ_FIELDS))


def unterminated_string(envelope: Envelope, size: int) -> bytes:
    return envelope.opening() + b'"sid":"' + b"a" * size


def many_keys(envelope: Envelope, size: int) -> bytes:
    count = size // len(b'"k000000":"v",')
    return envelope.one_object(envelope.members() + b"," + b",".join(b'"k%06d":"v"' % i for i in range(count)))


def duplicate_keys(envelope: Envelope, size: int) -> bytes:
    return envelope.one_object(envelope.members() + b"," + b",".join([b'"k":"v"', b'"K":"v"'] * (size // 16)))


def missing_comma_chain(envelope: Envelope, size: int) -> bytes:
    return envelope.one_object(envelope.members() + b"," + b" ".join(b'"k%06d":"v"' % i for i in range(size // 14)))


def missing_comma_chain_broken(envelope: Envelope, size: int) -> bytes:
    """Every gap repairable but the document still invalid at its very end."""
    return missing_comma_chain(envelope, size)[:-1]


def padded_keys(envelope: Envelope, size: int) -> bytes:
    return envelope.one_object(envelope.members() + b"," + b",".join(b'" k%06d ":"v"' % i for i in range(size // 16)))


def padded_key_lookalikes(envelope: Envelope, size: int) -> bytes:
    """Whitespace beside quotes everywhere, a key nowhere."""
    return b'[" ' + b'" , " ' * (size // 6) + b'"'


def deep_nesting(envelope: Envelope, size: int) -> bytes:
    return b"[" * size


def deep_valid_nesting(envelope: Envelope, size: int) -> bytes:
    depth = 1000  # within what a C parser accepts; far deeper than any vendor nests
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return envelope.one_object(
        envelope.members() + b',"x":' + inner + b',"y":"' + b"p" * max(0, size - len(inner)) + b'"'
    )


def many_reports(envelope: Envelope, size: int) -> bytes:
    """As many distinct reports as fit; one report with as many keys where a body holds one report."""
    if not envelope.array:
        return envelope.one_object(envelope.members() + b"," + b",".join(b'"x%d":"v"' % i for i in range(size // 12)))
    one = len(orjson.dumps(envelope.report)) + 1
    reports = [
        {**envelope.report, **{name: f"{envelope.report[name]}-{i}" for name in ID_FIELDS if name in envelope.report}}
        for i in range(max(1, size // one))
    ]
    return envelope.prefix + orjson.dumps(reports) + envelope.suffix


def wide_numbers(envelope: Envelope, size: int) -> bytes:
    """Numbers of a few bytes that a gigabyte writes out in full."""
    count = size // len(b'"n000000":1e-999999999,')
    return envelope.one_object(envelope.members() + b"," + b",".join(b'"n%06d":1e-999999999' % i for i in range(count)))


def long_number(envelope: Envelope, size: int) -> bytes:
    """One number of as many digits as fit (orjson refuses it: no double holds it)."""
    return envelope.one_object(envelope.members() + b',"n":' + b"1" * size)


def many_exponents(envelope: Envelope, size: int) -> bytes:
    """As many numbers with exponents as fit, each of a readable width: every one is judged."""
    count = size // len(b'"n000000":1.5e-7,')
    return envelope.one_object(envelope.members() + b"," + b",".join(b'"n%06d":1.5e-7' % i for i in range(count)))


def many_exponents_broken(envelope: Envelope, size: int) -> bytes:
    """The same, never closed: the numbers are searched in a body orjson refuses."""
    return many_exponents(envelope, size)[:-1]


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
    "wide_numbers": wide_numbers,
    "long_number": long_number,
    "many_exponents": many_exponents,
    "many_exponents_broken": many_exponents_broken,
}
