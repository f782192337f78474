"""The bodies of ``tencent/voicecode`` and ``tencent/voiceprompt`` (adapter ``tencent_voice_status``), for the
OpenAPI document."""

from __future__ import annotations

from ringback.normalizer.adapters.schema_parts import Schema, VendorFormat, record, ref, text

TENCENT_VOICE = "Tencent Cloud voice"
VOICE_BODIES = (
    "Tencent pushes every voice callback of an application to the one URL configured for it, so this "
    "route reads all four voice bodies, told apart by the key that wraps the report: "
    "`voicecode_callback`, `voiceprompt_callback`, `voicekey_callback`, `voice_failure_callback`. "
    "Which of the two voice routes an application is given changes nothing but the route stored."
)

FORMATS: dict[str, VendorFormat] = {
    "tencent/voicecode": VendorFormat(
        TENCENT_VOICE,
        "Tencent Cloud voice verification-code status, and every other voice push",
        VOICE_BODIES,
        "TencentVoicePush",
    ),
    "tencent/voiceprompt": VendorFormat(
        TENCENT_VOICE,
        "Tencent Cloud voice prompt status, and every other voice push",
        VOICE_BODIES,
        "TencentVoicePush",
    ),
}

SCHEMAS: dict[str, Schema] = {
    "TencentVoiceCallStatus": record(
        "A voice call's status (verification code or prompt).",
        {
            "result": text("`0` answered, `1` not answered, `2` call error."),
            "accept_time": text("Unix seconds the callee answered (`0` or empty when not answered)."),
            "call_from": text("The number the callee sees (may be empty)."),
            "callid": text("The call's id."),
            "end_calltime": text("Unix seconds the call ended."),
            "fee": text("Billable minutes."),
            "mobile": text("The callee's number."),
            "nationcode": text("Country calling code of `mobile`."),
            "start_calltime": text("Unix seconds the call started."),
        },
        ("callid",),
    ),
    "TencentVoiceKeyPress": record(
        "The keys the callee pressed during a voice prompt.",
        {
            "call_from": text("The number the callee sees (may be empty)."),
            "callid": text("The call's id."),
            "keypress": text("The keys pressed."),
            "mobile": text("The callee's number."),
            "nationcode": text("Country calling code of `mobile`."),
        },
        ("callid", "keypress"),
    ),
    "TencentVoiceFailure": record(
        "A call that could not be placed.",
        {
            "call_from": text("The number the callee would have seen (may be empty)."),
            "callid": text("The call's id."),
            "failure_code": {
                "type": ["integer", "string"],
                "description": "A code of the vendor's push error-code table (a string of digits is read too).",
            },
            "failure_reason": text("The code's text."),
            "mobile": text("The callee's number."),
            "nationcode": text("Country calling code of `mobile`."),
        },
        ("callid", "failure_code"),
    ),
    "TencentVoicePush": {
        "description": "Exactly one of the four voice reports, wrapped in the key that names it.",
        "anyOf": [
            {"type": "object", "properties": {wrapper: ref(schema)}, "required": [wrapper]}
            for wrapper, schema in (
                ("voicecode_callback", "TencentVoiceCallStatus"),
                ("voiceprompt_callback", "TencentVoiceCallStatus"),
                ("voicekey_callback", "TencentVoiceKeyPress"),
                ("voice_failure_callback", "TencentVoiceFailure"),
            )
        ],
    },
}
