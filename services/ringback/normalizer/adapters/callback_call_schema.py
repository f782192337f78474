"""The bodies of the ``callback-call/*`` routes (adapter ``callback_call``), for the OpenAPI document."""

from __future__ import annotations

from ringback.normalizer.adapters.schema_parts import Schema, VendorFormat, one_or_many, record, text, text_or_number

CLICK_TO_CALL = "Click-to-call"
CLICK_TO_CALL_BODIES = (
    "A JSON object, or an array of them (one event each). Field names are matched case-insensitively "
    "(`callId` / `CallId`); times may be unix seconds, unix milliseconds or local `YYYY-MM-DD HH:MM:SS`."
)


FORMATS: dict[str, VendorFormat] = {
    "callback-call/status": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call state, pushed to `statusUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallStatusPush",
    ),
    "callback-call/hangup": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call CDR, pushed to `hangupUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallHangupPush",
    ),
    "callback-call/record": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call recording, pushed to `recordUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallRecordPush",
    ),
    "callback-call/keypress": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call key press, pushed to `keyPressUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallKeypressPush",
    ),
}


def click_to_call_schemas() -> dict[str, Schema]:
    """Four kinds of push, each one object or an array of them; the kinds share their ids."""
    common = {
        "callId": text("The call's id."),
        "requestId": text("Echoed from the request that started the call."),
        "appId": text("The application."),
    }
    time = {
        "type": ["string", "integer"],
        "description": "Unix seconds, unix milliseconds or local `YYYY-MM-DD HH:MM:SS`.",
    }
    kinds = {
        "ClickToCallStatus": record(
            "A state of one leg of the call.",
            {
                **common,
                "src": text("Calling party."),
                "dst": text("Called party."),
                "userFlag": text("Whose leg: `src` (caller) or `dst` (callee)."),
                "callStatus": {
                    "type": ["string", "integer"],
                    "description": (
                        "`invite`, `ringing`, `answered`, `refused`, `disaccept`, `failed`, or a number 0-5."
                    ),
                },
                "status": {
                    "type": ["string", "integer"],
                    "description": "One statusFlag bit (low byte caller leg, high byte callee leg).",
                },
                "errorCode": text("SIP code of a refused or failed call."),
                "timeStamp": time,
            },
        ),
        "ClickToCallHangup": record(
            "The call's CDR.",
            {
                **common,
                "src": text("Calling party."),
                "dst": text("Called party."),
                **dict.fromkeys(
                    (
                        "startSrcCallTime",
                        "startSrcRingTime",
                        "srcAcceptTime",
                        "startDstCallTime",
                        "startDstRingTime",
                        "dstAcceptTime",
                        "endCallTime",
                    ),
                    time,
                ),
                "callEndStatus": {
                    "type": ["string", "integer"],
                    "description": (
                        "0 unknown, 1 normal call, 2/3 caller/callee did not answer, 4/5 caller/callee unreachable."
                    ),
                },
                "duration": text_or_number("Billed seconds."),
                "recordUrl": text("The recording (may be empty)."),
            },
        ),
        "ClickToCallRecord": record("A recording of the call.", {**common, "recordUrl": text("The recording.")}),
        "ClickToCallKeypress": record(
            "Keys pressed during the call.",
            {
                **common,
                "key": text("The key(s) pressed (also `keyPress` or `digits`)."),
                "phone": text("Who pressed."),
                "timeStamp": time,
            },
        ),
    }
    pushes = {
        f"{name}Push": one_or_many(f"{schema['description']} One object or an array of them.", name)
        for name, schema in kinds.items()
    }
    return {**kinds, **pushes}


SCHEMAS: dict[str, Schema] = click_to_call_schemas()
