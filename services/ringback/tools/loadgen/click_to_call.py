"""Click-to-call: status pushes per leg, key presses, the hang-up CDR and a recording of some answered calls."""

from __future__ import annotations

from ringback.tools.loadgen.calls import (
    ANSWERED,
    BUSY,
    CALL_FAILED,
    CDR_PUSH_DELAY_S,
    INVALID_NUMBER,
    NO_ANSWER,
    RECORDING_DELAY_S,
    REJECTED,
    STATE_PUSH_DELAY_S,
    TALK_S,
    UNREACHABLE,
    Dial,
)
from ringback.tools.loadgen.cdr_platform import RECORDING_HOST
from ringback.tools.loadgen.draws import Weighted, between
from ringback.tools.loadgen.parties import App
from ringback.tools.loadgen.story import Push, Story, StoryKit

CALLER_ANSWERED = 0.93  # the platform calls the caller (who asked for the call) first
CALLER_NOT_ANSWERED = Weighted({NO_ANSWER: 70, UNREACHABLE: 30})
#: The SIP code a failed or refused leg carries (``errorCode``).
SIP_CODE = {
    NO_ANSWER: "480",
    BUSY: "486",
    REJECTED: "603",
    UNREACHABLE: "503",
    INVALID_NUMBER: "404",
    CALL_FAILED: "500",
}
#: ``callEndStatus`` when the caller did not answer, and when the callee did not.
CALLER_END_STATUS = {NO_ANSWER: "2", UNREACHABLE: "4"}
CALLEE_END_STATUS = {
    ANSWERED: "1",
    NO_ANSWER: "3",
    BUSY: "3",
    REJECTED: "3",
    UNREACHABLE: "5",
    INVALID_NUMBER: "5",
    CALL_FAILED: "5",
}
KEY_PROMPT_S = (3, 8)  # uniform: caller answered -> key pressed (after the prompt)
KEY_REPLAY = 0.1  # share of callers who press 2 (replay the prompt) before 1
CALL_TYPE = "3"  # PSTN to PSTN


def click_to_call(kit: StoryKit, app: App, number: int) -> Story:
    """The platform calls the caller, then (after a key press, where the app asks for one) the
    callee: status pushes per leg, key presses, the hang-up CDR, a recording of some answered calls."""
    rng = kit.rng
    call_id = f"{kit.tag}-{number}"
    common = {
        "appId": app.callback_app_id,
        "callId": call_id,
        "requestId": f"r{number}",
        "src": "0086" + kit.mobile(),
        "dst": "0086" + kit.mobile(),
    }
    caller_outcome = ANSWERED if rng.random() < CALLER_ANSWERED else CALLER_NOT_ANSWERED.draw(rng)
    caller = kit.dial(caller_outcome, TALK_S)
    states: list[tuple[int, str, str, str | None]] = leg_states("src", 0, caller)
    keys: list[tuple[int, str]] = []
    callee: Dial | None = None
    dialled = 0
    end = caller.ended
    if caller.answered is not None:
        dialled = caller.answered + 1
        if app.asks_for_a_key:
            pressed = caller.answered + between(rng, KEY_PROMPT_S)
            if rng.random() < KEY_REPLAY:
                keys.append((pressed, "2"))
                pressed += between(rng, KEY_PROMPT_S)
            keys.append((pressed, "1"))
            dialled = pressed + 1
        callee = kit.dial(kit.outcome(app), TALK_S)
        states += leg_states("dst", dialled, callee)
        end = dialled + callee.ended
        states.append((end, "src", "disaccept", None))  # the caller's leg ends with the callee's
    recorded = app.records_calls and callee is not None and callee.answered is not None
    record_url = f"{RECORDING_HOST}/{app.callback_app_id}/{call_id}.mp3" if recorded else ""
    end_status = CALLER_END_STATUS[caller.outcome] if callee is None else CALLEE_END_STATUS[callee.outcome]

    def at(offset: int | None, start: int) -> str:
        return "0" if offset is None else str(start + offset)

    def tell(start: int) -> list[Push]:
        timeline: list[tuple[int, Push]] = []
        for offset, flag, word, error in states:
            body = {
                **common,
                "userFlag": flag,
                "callStatus": word,
                "timeStamp": str(start + offset),
                "callType": CALL_TYPE,
            }
            if error is not None:
                body["errorCode"] = error
            timeline.append((offset, Push("callback-call/status", start + offset, STATE_PUSH_DELAY_S.draw(rng), body)))
        for offset, key in keys:
            body = {
                "appId": common["appId"],
                "callId": call_id,
                "requestId": common["requestId"],
                "phone": common["src"],
                "key": key,
                "timeStamp": str(start + offset),
            }
            timeline.append(
                (offset, Push("callback-call/keypress", start + offset, STATE_PUSH_DELAY_S.draw(rng), body))
            )
        timeline.sort(key=lambda entry: entry[0])  # stable: a leg's states keep their order
        pushes = [push for _, push in timeline]
        answered = None if callee is None or callee.answered is None else dialled + callee.answered
        cdr = {
            **common,
            "startSrcCallTime": str(start),
            "startSrcRingTime": at(caller.rang, start),
            "srcAcceptTime": at(caller.answered, start),
            "startDstCallTime": at(dialled if callee else None, start),
            "startDstRingTime": at(None if callee is None or callee.rang is None else dialled + callee.rang, start),
            "dstAcceptTime": at(answered, start),
            "endCallTime": str(start + end),
            "callEndStatus": end_status,
            "duration": str(callee.talk_s if callee else 0),
            "recordUrl": record_url,
            "callType": CALL_TYPE,
        }
        pushes.append(Push("callback-call/hangup", start + end, CDR_PUSH_DELAY_S.draw(rng), cdr))
        if recorded:
            body = {
                "appId": common["appId"],
                "callId": call_id,
                "requestId": common["requestId"],
                "recordUrl": record_url,
                "callType": CALL_TYPE,
            }
            pushes.append(Push("callback-call/record", start + end, RECORDING_DELAY_S.draw(rng), body))
        return pushes

    return Story(end, tell)


def leg_states(flag: str, dialled: int, dial: Dial) -> list[tuple[int, str, str, str | None]]:
    """A leg's status pushes (offset, userFlag, callStatus, errorCode); an answered leg's hang-up is
    pushed when the call ends, for the callee here and for the caller by the caller of this."""
    states: list[tuple[int, str, str, str | None]] = [(dialled, flag, "invite", None)]
    if dial.rang is not None:
        states.append((dialled + dial.rang, flag, "ringing", None))
    if dial.answered is not None:
        states.append((dialled + dial.answered, flag, "answered", None))
        if flag == "dst":
            states.append((dialled + dial.ended, flag, "disaccept", None))
    else:
        word = "refused" if dial.outcome in (BUSY, REJECTED) else "failed"
        states.append((dialled + dial.ended, flag, word, SIP_CODE[dial.outcome]))
    return states
