"""The canonical status vocabulary shared by every vendor format (mapping tables live in the adapters)."""

DELIVERED = "delivered"
FAILED = "failed"
UNKNOWN = "unknown"  # a vendor code ringback does not know: the raw value is kept in vendor_status/vendor_code
