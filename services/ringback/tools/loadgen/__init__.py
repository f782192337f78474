"""`ringback loadgen`: simulated vendor traffic against any edge URL.

The generator tells stories the way the vendors push them, each in its own time:

- a **Tencent SMS** send of 1–10 messages, reported in one receipt array (most DELIVRD, some a
  carrier's failure code, some first ENROUTE with the final receipt in a later push); a few end
  users reply;
- a **Tencent voice** code or prompt call: a key press during some prompts, then the status push
  with its `fee`; or the call failure the vendor reports instead;
- the **CDR platform**'s two-way call (state pushes callout → alerting → answer → disconnect, then
  the fid-4 CDR with the same `requestid`), its voice-code CDR (fid 2) and its conference CDRs (fid 5);
- a **click-to-call** call: status pushes per leg (invite → ringing → answered / refused / failed →
  hang-up), key presses where the app asks for one, the hang-up CDR, and a recording of some answered
  calls.

Each story belongs to one of several applications (``--apps``) spread over the tenants given (their
URLs ``/t/{tenant}/{secret}/callbacks/…``), else sent to the tenant-less routes. Vendor times are
whole seconds a little before the moment a push is sent; a story's pushes wait in a bounded queue
until their time comes (see ``TrafficMaker``). A share of requests resend an earlier body, as vendors
do, and a share are malformed. Every body carries a run tag (in ids; an SMS reply, which has no id, in
``extend``) so that the events of one run can be counted in ClickHouse afterwards.
"""

from ringback.tools.loadgen.leakage import Leakage
from ringback.tools.loadgen.parties import ANONYMOUS, DEFAULT_APPS, App, Tenant
from ringback.tools.loadgen.runner import REQUEST_TIMEOUT_S, RESEND_WINDOW, LoadPlan, LoadSummary, parse_mix, run
from ringback.tools.loadgen.tenants import tenant, tenants_for, tenants_from_file
from ringback.tools.loadgen.traffic import DEFAULT_MIX, PRODUCT_ROUTES, TAG_IN_EXTEND, Generated, TrafficMaker

__all__ = [
    "ANONYMOUS",
    "DEFAULT_APPS",
    "DEFAULT_MIX",
    "PRODUCT_ROUTES",
    "REQUEST_TIMEOUT_S",
    "RESEND_WINDOW",
    "TAG_IN_EXTEND",
    "App",
    "Generated",
    "Leakage",
    "LoadPlan",
    "LoadSummary",
    "Tenant",
    "TrafficMaker",
    "parse_mix",
    "run",
    "tenant",
    "tenants_for",
    "tenants_from_file",
]
