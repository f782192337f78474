"""The canonical status vocabulary shared by every vendor format.

Each adapter maps its vendor's codes onto these values and always keeps the vendor's own value beside
it (``vendor_status`` / ``vendor_code`` / ``vendor_description``). A code an adapter does not know
maps to ``unknown`` — never to a guess.
"""

# Messages (SMS)
DELIVERED = "delivered"  # reached the handset
PENDING = "pending"  # accepted or still in transit; a later report will settle it
FAILED = "failed"  # will not be delivered
RECEIVED = "received"  # an end user's message (an SMS reply) reached the platform

# Call outcomes (status callbacks and CDRs)
ANSWERED = "answered"
NO_ANSWER = "no_answer"
BUSY = "busy"
REJECTED = "rejected"  # declined by the called party or barred by the network
UNREACHABLE = "unreachable"  # powered off, out of service, suspended, in arrears
INVALID_NUMBER = "invalid_number"  # vacant, changed or wrongly dialled number
CALL_FAILED = "call_failed"  # network, line or platform failure

# Call progress (state pushes)
INITIATED = "initiated"
RINGING = "ringing"
IN_PROGRESS = "in_progress"
ENDED = "ended"

# Other event kinds
RECORDED = "recorded"
KEY_PRESSED = "key_pressed"

UNKNOWN = "unknown"

ALL = (
    DELIVERED,
    PENDING,
    FAILED,
    RECEIVED,
    ANSWERED,
    NO_ANSWER,
    BUSY,
    REJECTED,
    UNREACHABLE,
    INVALID_NUMBER,
    CALL_FAILED,
    INITIATED,
    RINGING,
    IN_PROGRESS,
    ENDED,
    RECORDED,
    KEY_PRESSED,
    UNKNOWN,
)
