"""Tencent SMS (seed 003): a send's receipt arrays, ENROUTE then final for some, and end users' replies."""

from __future__ import annotations

from dataclasses import dataclass

from ringback.tools.loadgen.draws import LogNormal, Weighted, between
from ringback.tools.loadgen.parties import CHINA, App
from ringback.tools.loadgen.story import Push, Story, StoryKit

# Tencent SMS (seed 003; codes from the vendor's SMS status code table)
SMS_REPORTS_MAX = 10
SMS_SEND_WINDOW_S = 4  # the receipts of one send arrive within this many seconds of each other
SMS_ENROUTE = 0.12  # share of messages first reported ENROUTE (still with the carrier)
#: An ENROUTE receipt says "not received (yet)": no report_status (it is neither SUCCESS nor FAIL), the
#: carrier's pending state in errmsg; the final receipt follows.
ENROUTE_REPORT_STATUS = ""
SMS_REPORT_STATUS = {"DELIVRD": "SUCCESS", "ENROUTE": ENROUTE_REPORT_STATUS}  # and FAIL with every failure code
SMS_FINAL_AFTER_ENROUTE_S = LogNormal(median=20, sigma=0.8, low=3, high=600)
SMS_RECEIPT_DELAY_S = LogNormal(median=1.5, sigma=0.6, low=0.2, high=20)
SMS_FAILURE_CODES = Weighted(
    {
        "UNDELIV": 22,
        "EXPIRED": 18,
        "REJECTD": 8,
        "MK:0001": 8,
        "MN:0001": 6,
        "MK:0005": 5,
        "MI:0013": 4,
        "DB:0141": 4,
        "TUIDING": 4,
        "MA:0051": 3,
        "IC:0151": 3,
        "HIGRISK": 3,
        "BWLIST_006": 3,
        "UNDELIV_601": 3,
        "NOROUTE": 2,
        "DELETED": 2,
        "UNDELIVRD": 2,
    }
)
SMS_DESCRIPTION = {
    "DELIVRD": "用户短信送达成功",
    "ENROUTE": "短信已提交运营商，尚未收到回执",
    "EXPIRED": "短信超过有效期未送达",
    "UNDELIV": "用户无法接收短信",
    "REJECTD": "运营商拒绝下发",
    "TUIDING": "用户已退订",
    "HIGRISK": "号码命中高危名单",
}
SMS_FAILED_DESCRIPTION = "运营商返回失败"
SMS_REPLY = 0.02  # share of delivered messages an end user answers
SMS_REPLY_AFTER_S = LogNormal(median=45, sigma=1.0, low=3, high=900)
SMS_REPLY_TEXTS = Weighted(
    {"退订": 30, "TD": 15, "1": 15, "好的": 10, "Y": 8, "收到，谢谢": 7, "已收到": 5, "T": 5, "N": 3, "?": 2}
)


@dataclass(slots=True)
class Message:
    """One SMS of a send, in seconds after the send: its receipts and an end user's reply."""

    sid: str
    mobile: str
    code: str  # the final receipt state: DELIVRD or a failure code
    first_at: int  # its first receipt: ENROUTE when enroute, else the final one
    final_at: int
    enroute: bool
    replied_at: int | None


def sms_send(kit: StoryKit, app: App, number: int) -> Story:
    """One send of 1-10 messages: one receipt array (ENROUTE for some), the final receipts of those
    later in one more, and a reply from a few of the end users."""
    rng, rand, mobile = kit.rng, kit.rng.random, kit.mobile  # (bound once: the busiest loop of all)
    messages = []
    for i in range(between(rng, (1, SMS_REPORTS_MAX))):
        received = int(rand() * (SMS_SEND_WINDOW_S + 1))
        enroute = rand() < SMS_ENROUTE
        code = "DELIVRD" if rand() < app.sms_delivered else SMS_FAILURE_CODES.draw(rng)
        final = received + SMS_FINAL_AFTER_ENROUTE_S.seconds(rng) if enroute else received
        replied = final + SMS_REPLY_AFTER_S.seconds(rng) if code == "DELIVRD" and rand() < SMS_REPLY else None
        messages.append(Message(f"{kit.tag}-{number}-{i}", mobile(), code, received, final, enroute, replied))
    later = [m for m in messages if m.enroute]

    def receipt(message: Message, at: int, code: str) -> dict[str, str]:
        return {
            "user_receive_time": kit.local(at),
            "nationcode": CHINA,
            "mobile": message.mobile,
            "report_status": SMS_REPORT_STATUS.get(code, "FAIL"),
            "errmsg": code,
            "description": SMS_DESCRIPTION.get(code, SMS_FAILED_DESCRIPTION),
            "sid": message.sid,
        }

    def tell(start: int) -> list[Push]:
        first = [receipt(m, start + m.first_at, "ENROUTE" if m.enroute else m.code) for m in messages]
        pushes = [
            Push(
                "tencent/sms-status",
                start + max(m.first_at for m in messages),
                SMS_RECEIPT_DELAY_S.draw(rng),
                first,
                len(first),
            )
        ]
        finals = [receipt(m, start + m.final_at, m.code) for m in later if not kit.leakage.sticks(rng)]
        if finals:
            pushes.append(
                Push(
                    "tencent/sms-status",
                    start + max(m.final_at for m in later),  # the latest of them, sent or not
                    SMS_RECEIPT_DELAY_S.draw(rng),
                    finals,
                    len(finals),
                )
            )
        for m in messages:
            if m.replied_at is not None:
                body = {
                    "extend": kit.tag,
                    "mobile": m.mobile,
                    "nationcode": CHINA,
                    "sign": app.sms_sign,
                    "text": SMS_REPLY_TEXTS.draw(rng),
                    "time": start + m.replied_at,
                }
                pushes.append(Push("tencent/sms-reply", start + m.replied_at, SMS_RECEIPT_DELAY_S.draw(rng), body))
        return pushes

    return Story(max(m.replied_at or m.final_at for m in messages), tell)
