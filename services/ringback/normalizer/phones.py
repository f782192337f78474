"""Phone numbers to E.164 with `phonenumbers`; the raw value is always kept by the caller."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "CN"


def to_e164(number: object, nationcode: object = None, default_region: str = DEFAULT_REGION) -> str | None:
    """E.164 for a vendor number, or None when it is empty, masked or not a possible number."""
    if number is None:
        return None
    digits = str(number).strip().replace(" ", "").replace("-", "")
    if not digits:
        return None
    code = str(nationcode).strip().lstrip("+") if nationcode not in (None, "") else ""
    if digits.startswith("00"):
        candidate, region = "+" + digits[2:], None
    elif digits.startswith("+"):
        candidate, region = digits, None
    elif code.isdigit():
        # Parse as a national number of the country code's region, so national prefixes ("0755…") fold away.
        region_of_code = phonenumbers.region_code_for_country_code(int(code))
        if region_of_code == phonenumbers.UNKNOWN_REGION:
            candidate, region = f"+{code}{digits}", None
        else:
            candidate, region = digits, region_of_code
    else:
        candidate, region = digits, default_region
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
