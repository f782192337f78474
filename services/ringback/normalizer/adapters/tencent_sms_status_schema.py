"""The body of ``tencent/sms-status`` (adapter ``tencent_sms_status``), for the OpenAPI document."""

from __future__ import annotations

from ringback.normalizer.adapters.schema_parts import Schema, VendorFormat, record, ref, text

TENCENT_SMS = "Tencent Cloud SMS"

FORMATS: dict[str, VendorFormat] = {
    "tencent/sms-status": VendorFormat(
        TENCENT_SMS,
        "Tencent Cloud SMS delivery status",
        "A JSON array of delivery reports (a lone report object is read too); each report becomes one event.",
        "TencentSmsStatusPush",
    ),
}

SCHEMAS: dict[str, Schema] = {
    "TencentSmsStatusReport": record(
        "One delivery report.",
        {
            "user_receive_time": text("When the handset received the SMS: China local time `YYYY-MM-DD HH:MM:SS`."),
            "nationcode": text("Country calling code of `mobile`, e.g. `86`."),
            "mobile": text("The recipient's number."),
            "report_status": text("`SUCCESS` or `FAIL`."),
            "errmsg": text("The carrier's receipt state (e.g. `DELIVRD`, `UNDELIV`) or a gateway failure code."),
            "description": text("The receipt state in words."),
            "sid": text("The id of the send this report is about."),
        },
        ("sid", "mobile", "report_status"),
    ),
    "TencentSmsStatusPush": {
        "description": "An array of delivery reports (a lone report object is read as one).",
        "anyOf": [
            {"type": "array", "items": ref("TencentSmsStatusReport"), "minItems": 1},
            ref("TencentSmsStatusReport"),
        ],
    },
}
