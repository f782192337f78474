"""The body of ``cdr-push`` (adapter ``cdr_push``), for the OpenAPI document."""

from __future__ import annotations

from ringback.normalizer.adapters.schema_parts import Schema, VendorFormat, record, ref, text, text_or_number

CDR = "CPaaS CDR push"

FORMATS: dict[str, VendorFormat] = {
    "cdr-push": VendorFormat(
        CDR,
        "CDR push: CDRs and two-way-call state pushes on one address",
        '`{"cdr": [...]}` with `fid` 2 (voice code), 4 (two-way call) or 5 (conference), or a bare two-way-call '
        "state object. The platform retries only on HTTP 500, at most three sends in all.",
        "CdrPush",
    ),
}

SCHEMAS: dict[str, Schema] = {
    "CdrEntry": record(
        "One CDR. Money is yuan, as text or a number; times are local `YYYY-MM-DD HH:MM:SS.fff`.",
        {
            "requestid": text("The CDR's id (unique within an `appid`)."),
            "appid": text("The application."),
            "fid": {
                "type": ["string", "integer"],
                "description": "`2` voice code, `4` two-way call, `5` conference.",
            },
            "tel": text("The party (fid 2 and 5)."),
            "stime": text("Answer time (fid 2 and 5)."),
            "etime": text("End time (fid 2 and 5)."),
            "caller": text("Calling party (fid 4)."),
            "called": text("Called party (fid 4)."),
            "callerstime": text("Caller leg answered (fid 4)."),
            "calleretime": text("Caller leg ended (fid 4)."),
            "calledstime": text("Callee leg answered (fid 4)."),
            "calledetime": text("Callee leg ended (fid 4)."),
            "stateDesc": text("The call's outcome in words, e.g. `正常`, `未应答` (fid 4)."),
            "tapesurl": text("The recording, or `NoTapes`."),
            "confid": text("The conference (fid 5)."),
            "duration": text_or_number("Billed seconds."),
            "oriamount": text_or_number("Charge (fid 2 and 4)."),
            "singleoriamount": text_or_number("Charge of this conference leg (fid 5)."),
            "customParm": text("Echoed from the request that started the call."),
        },
        ("requestid", "fid"),
    ),
    "CdrList": record("CDRs.", {"cdr": {"type": "array", "items": ref("CdrEntry"), "minItems": 1}}, ("cdr",)),
    "CallStatePush": record(
        "A two-way call's state change.",
        {
            "requestid": text("The call's id."),
            "src": text("Calling party."),
            "dsc": text("Called party."),
            "timestamp": text("Local `YYYY-MM-DD HH:MM:SS`."),
            "state": text("`callout`, `alerting`, `answer` or `disconnect`."),
        },
        ("requestid", "state"),
    ),
    "CdrPush": {"description": "CDRs, or one call-state change.", "anyOf": [ref("CdrList"), ref("CallStatePush")]},
}
