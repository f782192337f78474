"""The body of ``tencent/sms-reply`` (adapter ``tencent_sms_reply``), for the OpenAPI document."""

from __future__ import annotations

from ringback.normalizer.adapters.schema_parts import Schema, VendorFormat, one_or_many, record, text
from ringback.normalizer.adapters.tencent_sms_status_schema import TENCENT_SMS

FORMATS: dict[str, VendorFormat] = {
    "tencent/sms-reply": VendorFormat(
        TENCENT_SMS,
        "Tencent Cloud SMS reply (an end user answered an SMS)",
        "One reply object (an array of them is read too, one event each).",
        "TencentSmsReplyPush",
    ),
}

SCHEMAS: dict[str, Schema] = {
    "TencentSmsReply": record(
        "One reply of an end user.",
        {
            "extend": text("The channel extension code (empty unless the account has one)."),
            "mobile": text("The end user who answered."),
            "nationcode": text("Country calling code of `mobile`."),
            "sign": text("The SMS signature the user answered."),
            "text": text("What the user wrote (may be empty)."),
            "time": {
                "type": ["integer", "string"],
                "description": "Unix seconds, a JSON number (a string of digits is read too).",
            },
        },
        ("mobile", "text", "time"),
    ),
    "TencentSmsReplyPush": one_or_many("A reply object, or an array of them.", "TencentSmsReply"),
}
