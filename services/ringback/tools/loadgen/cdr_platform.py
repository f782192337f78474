"""The CDR platform (seed 002): two-way calls (state pushes, then the fid-4 CDR), voice-code and conference CDRs."""

from __future__ import annotations

from ringback.tools.loadgen.calls import (
    ANSWERED,
    BUSY,
    CALL_FAILED,
    CDR_PUSH_DELAY_S,
    INVALID_NUMBER,
    NO_ANSWER,
    REJECTED,
    RING_S,
    SETUP_S,
    STATE_PUSH_DELAY_S,
    TALK_S,
    UNREACHABLE,
    billed_minutes,
    yuan,
)
from ringback.tools.loadgen.draws import LogNormal, Weighted, between
from ringback.tools.loadgen.parties import App
from ringback.tools.loadgen.story import Push, Story, StoryKit
from ringback.tools.loadgen.tencent_voice import VOICE_CODE_TALK_S

CDR_PLATFORM_STORIES = Weighted({"two-way call": 75, "voice code": 15, "conference": 10})
CALLER_ANSWERS_S = (2, 10)  # uniform: the platform calls the caller first, who answers after this long
#: ``stateDesc`` per outcome ("通话结果识别"), combined values included.
STATE_DESC: dict[str, Weighted[str]] = {
    ANSWERED: Weighted({"正常": 70, "应答": 20, "应答|正常": 10}),
    NO_ANSWER: Weighted({"未应答": 60, "无人接听": 40}),
    BUSY: Weighted({"用户正忙": 70, "正在通话中": 30}),
    REJECTED: Weighted({"用户拒接": 85, "呼入限制": 15}),
    UNREACHABLE: Weighted(
        {"关机": 40, "停机": 15, "无法拨通": 15, "暂停服务": 10, "欠费": 10, "无法接听": 5, "来电提醒": 5}
    ),
    INVALID_NUMBER: Weighted({"空号": 85, "改号": 10, "拨号方式不正确": 5}),
    CALL_FAILED: Weighted({"网络忙": 40, "线路故障": 25, "稍后再拨": 20, "呼叫转移失败": 15}),
}
CONFERENCE_PARTIES = (2, 6)  # uniform
CONFERENCE_JOIN_S = (0, 90)  # uniform: when each party joins after the conference starts

# Click-to-call (seed 004 and the CallBackCdr model)

CONFERENCE_LEG_S = LogNormal(median=240, sigma=0.7, low=10, high=1800)
RECORDING_HOST = "https://record.example.com"


def cdr_platform(kit: StoryKit, app: App, number: int) -> Story:
    kind = CDR_PLATFORM_STORIES.draw(kit.rng)
    if kind == "voice code":
        return voice_code_cdr(kit, app, number)
    if kind == "conference":
        return conference(kit, app, number)
    return two_way_call(kit, app, number)


def two_way_call(kit: StoryKit, app: App, number: int) -> Story:
    """The caller is called and answers, then the callee: a state push per step
    (callout, alerting, answer, disconnect), then the fid-4 CDR."""
    rng = kit.rng
    request_id, caller, called = f"{kit.tag}-{number}", kit.mobile(), kit.mobile()
    caller_answered = between(rng, CALLER_ANSWERS_S)
    callout = caller_answered + 1
    dial = kit.dial(kit.outcome(app), TALK_S)
    state_desc = STATE_DESC[dial.outcome].draw(rng)
    recorded = app.records_calls and dial.answered is not None
    custom = f"order-{number}"
    end = callout + dial.ended

    def tell(start: int) -> list[Push]:
        def state(name: str, at: int) -> Push:
            body = {
                "requestid": request_id,
                "src": caller,
                "dsc": called,
                "timestamp": kit.local(start + at),
                "state": name,
            }
            return Push("cdr-push", start + at, STATE_PUSH_DELAY_S.draw(rng), body)

        pushes = [state("callout", callout)]
        if dial.rang is not None:
            pushes.append(state("alerting", callout + dial.rang))
        if dial.answered is not None:
            pushes.append(state("answer", callout + dial.answered))
        pushes.append(state("disconnect", end))
        answered = "" if dial.answered is None else kit.local(start + callout + dial.answered) + ".000"
        cdr = {
            "requestid": request_id,
            "appid": app.platform_app_id,
            "fid": kit.count(app, 4),
            "caller": caller,
            "called": called,
            "callerstime": kit.local(start + caller_answered) + ".000",
            "calleretime": kit.local(start + end) + ".000",
            "calledstime": answered,
            "calledetime": kit.local(start + end) + ".000" if answered else "",
            "tapesurl": f"{RECORDING_HOST}/{app.platform_app_id}/{request_id}.mp3" if recorded else "NoTapes",
            "duration": kit.count(app, dial.talk_s),
            "oriamount": kit.amount(app, yuan(billed_minutes(dial.talk_s) * app.fen_per_minute)),
            "stateDesc": state_desc,
            "customParm": custom,
        }
        push = Push("cdr-push", start + end, CDR_PUSH_DELAY_S.draw(rng), {"cdr": [cdr]})
        kit.leakage.bill(push.at + push.delay, request_id, kit.local(start + end), str(cdr["oriamount"]), dial.talk_s)
        if dial.answered is None or not kit.leakage.drops_cdr(rng):
            pushes.append(push)
        return pushes

    return Story(end, tell)


def voice_code_cdr(kit: StoryKit, app: App, number: int) -> Story:
    """A voice code the callee answered: one fid-2 CDR after the call."""
    rng = kit.rng
    answered = between(rng, SETUP_S) + RING_S.seconds(rng)
    talk = VOICE_CODE_TALK_S.seconds(rng)
    tel = kit.mobile()

    def tell(start: int) -> list[Push]:
        cdr = {
            "requestid": f"{kit.tag}-{number}",
            "appid": app.platform_app_id,
            "fid": kit.count(app, 2),
            "tel": tel,
            "stime": kit.local(start + answered) + ".000",
            "etime": kit.local(start + answered + talk) + ".000",
            "duration": kit.count(app, talk),
            "oriamount": kit.amount(app, yuan(billed_minutes(talk) * app.fen_per_minute)),
        }
        push = Push("cdr-push", start + answered + talk, CDR_PUSH_DELAY_S.draw(rng), {"cdr": [cdr]})
        kit.leakage.bill(
            push.at + push.delay, str(cdr["requestid"]), str(cdr["etime"])[:19], str(cdr["oriamount"]), talk
        )
        return [push]

    return Story(answered + talk, tell)


def conference(kit: StoryKit, app: App, number: int) -> Story:
    """A conference: one fid-5 CDR per participant leg, all pushed together when it ends."""
    rng = kit.rng
    legs = []
    for _ in range(between(rng, CONFERENCE_PARTIES)):
        joined = between(rng, CONFERENCE_JOIN_S)
        legs.append((kit.mobile(), joined, joined + CONFERENCE_LEG_S.seconds(rng)))
    end = max(left for _, _, left in legs)
    tapes = f"{RECORDING_HOST}/{app.platform_app_id}/conf-{number}.mp3" if app.records_calls else "NoTapes"

    def tell(start: int) -> list[Push]:
        cdrs = [
            {
                "requestid": f"{kit.tag}-{number}-{i}",
                "appid": app.platform_app_id,
                "fid": kit.count(app, 5),
                "tel": tel,
                "stime": kit.local(start + joined) + ".000",
                "etime": kit.local(start + left) + ".000",
                "confid": f"{number:06d}",
                "duration": kit.count(app, left - joined),
                "singleoriamount": kit.amount(app, yuan(billed_minutes(left - joined) * app.fen_per_minute)),
                "customParm": f"meeting-{number}",
                "tapesurl": tapes,
            }
            for i, (tel, joined, left) in enumerate(legs)
        ]
        push = Push("cdr-push", start + end, CDR_PUSH_DELAY_S.draw(rng), {"cdr": cdrs}, len(cdrs))
        for leg in cdrs:
            due, at = push.at + push.delay, str(leg["etime"])[:19]
            kit.leakage.bill(due, str(leg["requestid"]), at, str(leg["singleoriamount"]), int(str(leg["duration"])))
        return [push]

    return Story(end, tell)
