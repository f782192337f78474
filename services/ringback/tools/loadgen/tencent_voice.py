"""Tencent voice (seeds 000, 001): a voice code or prompt, a key press, the status with its fee, or a failure."""

from __future__ import annotations

from ringback.tools.loadgen.calls import (
    ANSWERED,
    BUSY,
    CALL_FAILED,
    INVALID_NUMBER,
    NO_ANSWER,
    REJECTED,
    STATE_PUSH_DELAY_S,
    UNREACHABLE,
    billed_minutes,
)
from ringback.tools.loadgen.draws import LogNormal, Weighted, between
from ringback.tools.loadgen.parties import CHINA, App
from ringback.tools.loadgen.story import Push, Story, StoryKit

# (and the vendor's "推送回执相关错误码" table)
PROMPT_WITHOUT_CALLER_ID = 0.5  # share of prompts whose callee sees no number (call_from "")
VOICE_KEY_PRESS = 0.3  # share of answered prompts where the callee presses a key
VOICE_KEYS = Weighted({"1": 50, "2": 20, "0": 10, "9": 5, "#": 10, "*": 5})
VOICE_KEY_AFTER_S = (4, 12)  # uniform: answered -> key pressed
VOICE_STATUS_RESULT = {ANSWERED: "0", NO_ANSWER: "1", REJECTED: "1", CALL_FAILED: "2"}
#: Outcomes Tencent reports as a call failure instead of a status push, and with which codes. A call
#: not answered or failing in the network is a status push (result 1 or 2) in the remaining cases.
VOICE_FAILURE_CODES: dict[str, Weighted[int]] = {
    BUSY: Weighted({2: 40, 10: 60}),
    UNREACHABLE: Weighted({1: 45, 3: 15, 6: 15, 7: 10, 13: 5, 4: 5, 16: 3, 17: 2}),
    INVALID_NUMBER: Weighted({8: 85, 15: 15}),
    NO_ANSWER: Weighted({5: 70, 20: 30}),
    REJECTED: Weighted({12: 100}),
    CALL_FAILED: Weighted({18: 40, 9: 30, 11: 20, 19: 10}),
}
VOICE_FAILURE_INSTEAD = {
    BUSY: 1.0,
    UNREACHABLE: 1.0,
    INVALID_NUMBER: 1.0,
    NO_ANSWER: 0.2,
    REJECTED: 0.3,
    CALL_FAILED: 0.5,
}
VOICE_FAILURE_TEXT = {
    1: "关机",
    2: "通话中",
    3: "不在服务区",
    4: "您拨打的号码已欠费",
    5: "无人接听",
    6: "暂时无法接通",
    7: "停机",
    8: "空号",
    9: "电路正忙",
    10: "用户正忙",
    11: "其他原因",
    12: "呼叫受限,请勿越权使用",
    13: "您拨打的号码已暂停服务",
    15: "号码不存在",
    16: "来电提醒",
    17: "您拨打的号码已过期",
    18: "网络忙",
    19: "未开通语音通话功能",
    20: "无应答",
}


VOICE_CODE_TALK_S = LogNormal(median=22, sigma=0.25, low=8, high=60)  # a code read out two or three times
VOICE_PROMPT_TALK_S = LogNormal(median=30, sigma=0.45, low=5, high=120)


def voice_call(kit: StoryKit, routes: Weighted[str], app: App, number: int) -> Story:
    """A voice code or prompt: a key press in some answered prompts, then the status with its fee;
    or, for a call that could not be placed, the failure instead."""
    rng = kit.rng
    assert routes is not None
    route = routes.draw(rng)
    prompt = route == "tencent/voiceprompt"
    dial = kit.dial(kit.outcome(app), VOICE_PROMPT_TALK_S if prompt else VOICE_CODE_TALK_S)
    failure = rng.random() < VOICE_FAILURE_INSTEAD.get(dial.outcome, 0.0)
    code = VOICE_FAILURE_CODES[dial.outcome].draw(rng) if failure else 0
    key_at = None
    if prompt and dial.answered is not None and rng.random() < VOICE_KEY_PRESS:
        key_at = min(dial.ended, dial.answered + between(rng, VOICE_KEY_AFTER_S))
    parties = {
        "call_from": "" if prompt and rng.random() < PROMPT_WITHOUT_CALLER_ID else app.display_number,
        "callid": f"{kit.tag}-{number}",
        "mobile": kit.mobile(),
        "nationcode": CHINA,
    }

    def tell(start: int) -> list[Push]:
        if failure:
            body = {
                "voice_failure_callback": {
                    **parties,
                    "failure_code": code,
                    "failure_reason": VOICE_FAILURE_TEXT[code],
                }
            }
            return [Push(route, start + dial.ended, STATE_PUSH_DELAY_S.draw(rng), body)]
        pushes = []
        if key_at is not None:
            pushes.append(
                Push(
                    route,
                    start + key_at,
                    STATE_PUSH_DELAY_S.draw(rng),
                    {"voicekey_callback": {**parties, "keypress": VOICE_KEYS.draw(rng)}},
                )
            )
        status = {
            **parties,
            "result": VOICE_STATUS_RESULT[dial.outcome],
            "start_calltime": str(start),
            "accept_time": str(start + dial.answered) if dial.answered is not None else "0",
            "end_calltime": str(start + dial.ended),
            "fee": str(billed_minutes(dial.talk_s)),
        }
        pushes.append(
            Push(
                route,
                start + dial.ended,
                STATE_PUSH_DELAY_S.draw(rng),
                {"voiceprompt_callback" if prompt else "voicecode_callback": status},
            )
        )
        return pushes

    return Story(dial.ended, tell)
