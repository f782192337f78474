"""Phone numbers to E.164 with `phonenumbers`; the raw value is always kept by the caller.

Only numbers written with ASCII digits, an optional leading ``+`` and the separators space, ``-``,
``(``, ``)`` and ``.`` are read. Anything else — a masked ``13xxxxxxxxx``, a vanity ``1-800-FLOWERS``
(phonenumbers would turn its letters into digits), full-width digits — is not a possible number.
"""

from __future__ import annotations

import json
import re
import sys
from array import array
from functools import lru_cache
from pathlib import Path

import phonenumbers
import phonenumbers.carrier
import phonenumbers.geocoder

from ringback import compiled
from ringback.normalizer.digits import ascii_digits

DEFAULT_REGION = "CN"
CN_COUNTRY_CODE = "86"
# The bulk of the traffic: a Chinese mobile, with country code 86 given or implied. For these the
# answer is "+86" + the 11 digits, exactly what phonenumbers returns (a test holds the two together),
# without the ~60 µs phonenumbers needs per parse.
_CN_MOBILE = re.compile(r"(?:0086|\+86|86(?=1[3-9][0-9]{9}\Z))?(1[3-9][0-9]{9})")
_WRITTEN_NUMBER = re.compile(r"\+?[0-9 ().\-]+")
_SEPARATORS = str.maketrans("", "", " ().-")
# E.164 has at most 15 digits; with an international prefix and separators a real number stays well
# under this. Longer text is no number, and is kept out of the cache below.
MAX_NUMBER_CHARS = 40
COUNTRY_CODE_MAX_DIGITS = 3
CACHE_SIZE = 65536


def to_e164(number: object, nationcode: object = None, default_region: str = DEFAULT_REGION) -> str | None:
    """E.164 for a vendor number, or None when it is empty, masked or not a possible number."""
    if number is None:
        return None
    digits = str(number).strip()
    if not digits or len(digits) > MAX_NUMBER_CHARS:
        return None
    if not ascii_digits(digits):  # the common case is digits alone; else: a "+", separators, or no number
        if not _WRITTEN_NUMBER.fullmatch(digits):
            return None
        digits = digits.translate(_SEPARATORS)
        if not digits.lstrip("+"):
            return None
    code = str(nationcode).strip().lstrip("+") if nationcode not in (None, "") else ""
    if code not in ("", CN_COUNTRY_CODE) and not (len(code) <= COUNTRY_CODE_MAX_DIGITS and ascii_digits(code)):
        return None  # a country code that cannot be read: which country is unknown
    if code in ("", CN_COUNTRY_CODE) and default_region == DEFAULT_REGION:
        mobile = _CN_MOBILE.fullmatch(digits)
        if mobile:
            return "+86" + mobile.group(1)
    return _parsed_e164(digits, code, default_region)


@lru_cache(maxsize=CACHE_SIZE)
def _parsed_e164(digits: str, code: str, default_region: str) -> str | None:
    if digits.startswith("00"):
        candidate, region = "+" + digits[2:], None
    elif digits.startswith("+"):
        candidate, region = digits, None
    elif code:
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


#: A Chinese mobile number's carrier and region follow from its first seven national digits (its
#: number segment): each segment is looked up once (``SegmentAnswers``), so every number of a segment
#: costs one lookup. Every other number is looked up whole (LRU-cached).
CN_PREFIX = "+" + CN_COUNTRY_CODE
CN_MOBILE_SEGMENT = len(CN_PREFIX) + 7
#: The segments' range (1300000 to 1999999) and the numbers in each (its last four digits).
CN_FIRST_SEGMENT = 1_300_000
CN_SEGMENT_COUNT = 700_000
SEGMENT_NUMBERS = 10_000
MAX_ANSWER_NUMBER = 2**16 - 1
CARRIER_LANGUAGE = "en"


#: Every segment's answer, worked out when the environment is built (``python -m ringback.tools.segments``,
#: run by ``make venv`` and the container build) for the phonenumbers release installed: without it a
#: fresh process pays ~20-50 µs per segment the first time it meets one, and real traffic meets
#: hundreds of thousands (the normalizer spent more than half its CPU on them in the bench).
SEGMENT_TABLE = Path(__file__).with_name("cn_segments.bin")
SEGMENT_TABLE_MAGIC = b"ringback cn segments 1"


def _lookup_source() -> str:
    """What the table's answers were worked out by: this module's source (a table made before it
    changed is not taken)."""
    try:
        return compiled.source_digest(__name__)
    except OSError:
        return "unknown"


#: The number types phonenumbers gives a carrier for (``phonenumbers.carrier``'s own test).
CARRIER_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.PAGER,
    }
)


def carrier_and_region(e164: str | None) -> tuple[str | None, str | None]:
    """(carrier, region) of an E.164 number as the numbering plan assigns them; None where unknown."""
    if not e164:
        return None, None
    if e164.startswith(CN_PREFIX) and _CN_MOBILE.fullmatch(e164):  # the segment answers alike: its first number
        return SEGMENTS.answer(int(e164[len(CN_PREFIX) : CN_MOBILE_SEGMENT]))
    return _carrier_and_region(e164)


def _segment_carrier_and_region(segment: int) -> tuple[str | None, str | None]:
    """A Chinese mobile segment's answer, from its first number: built as ``phonenumbers.parse`` builds
    "+86" and eleven digits (country code and national number alone), without its ~14 µs of parsing."""
    first = segment * SEGMENT_NUMBERS
    return _described(phonenumbers.PhoneNumber(country_code=int(CN_COUNTRY_CODE), national_number=first))


class SegmentAnswers:
    """Every Chinese mobile segment's answer once looked up, for the life of the process: the segments
    ("1", a digit 3-9, five more digits) are 700 000, their distinct answers a few hundred, so each
    segment keeps the two-byte number of its answer (1.4 MB in all). Uniform traffic over the segments
    would miss an LRU cache of any affordable size on most numbers; here each segment misses once."""

    def __init__(self) -> None:
        self._slots = array("H", bytes(2 * CN_SEGMENT_COUNT))
        self._answers: list[tuple[str | None, str | None]] = [(None, None)]  # number 0: not looked up yet
        self._numbers: dict[tuple[str | None, str | None], int] = {}
        self.loaded = False  # whether every segment's answer came from a table

    def table(self) -> bytes:
        """Every segment's answer as ``load`` reads it (each segment looked up first)."""
        for segment in range(CN_FIRST_SEGMENT, CN_FIRST_SEGMENT + CN_SEGMENT_COUNT):
            self.answer(segment)
        slots = array("H", self._slots)
        if sys.byteorder != "little":
            slots.byteswap()
        header = {"phonenumbers": phonenumbers.__version__, "source": _lookup_source(), "answers": self._answers[1:]}
        return SEGMENT_TABLE_MAGIC + b"\n" + json.dumps(header).encode() + b"\n" + slots.tobytes()

    def load(self, data: bytes) -> str | None:
        """Take every segment's answer from ``table``'s bytes; why not (None when taken). A table of
        another phonenumbers release, or one that does not read whole, changes nothing."""
        magic, _, rest = data.partition(b"\n")
        line, _, body = rest.partition(b"\n")
        if magic != SEGMENT_TABLE_MAGIC:
            return "not a segment table"
        try:
            header = json.loads(line)
            release, source = header["phonenumbers"], header["source"]
            answers = [(_text_or_none(c), _text_or_none(r)) for c, r in header["answers"]]
        except (ValueError, KeyError, TypeError):
            return "its header does not read"
        if release != phonenumbers.__version__:
            return f"made for phonenumbers {release}, not {phonenumbers.__version__}"
        if source != _lookup_source():
            return "made before phones.py changed"
        if len(body) != 2 * CN_SEGMENT_COUNT or len(answers) > MAX_ANSWER_NUMBER:
            return "its size is wrong"
        slots = array("H", body)
        if sys.byteorder != "little":
            slots.byteswap()
        if max(slots) > len(answers):
            return "it names answers it does not hold"
        self._slots = slots
        self._answers = [(None, None), *answers]
        self._numbers = {answer: number for number, answer in enumerate(self._answers) if number}
        self.loaded = True
        return None

    def answer(self, segment: int) -> tuple[str | None, str | None]:
        slot = segment - CN_FIRST_SEGMENT
        number = self._slots[slot]
        if number:
            return self._answers[number]
        found = _segment_carrier_and_region(segment)
        number = self._numbers.get(found, 0)
        if not number:
            if len(self._answers) > MAX_ANSWER_NUMBER:
                return found  # more distinct answers than two bytes number: not kept (never seen)
            number = len(self._answers)
            self._answers.append(found)
            self._numbers[found] = number
        self._slots[slot] = number
        return found


def _text_or_none(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("an answer is text or null")


def load_table(answers: SegmentAnswers) -> str | None:
    """Take the built table (``SEGMENT_TABLE``) into ``answers``; why not (None when taken)."""
    try:
        data = SEGMENT_TABLE.read_bytes()
    except FileNotFoundError:
        return f"none at {SEGMENT_TABLE}"
    except OSError as exc:
        return f"it cannot be read: {exc}"
    return answers.load(data)


SEGMENTS = SegmentAnswers()
#: Why the built table was not taken (None when it was): then each segment is looked up the first time
#: it is met, as without a table.
SEGMENT_TABLE_REFUSED = load_table(SEGMENTS)


@lru_cache(maxsize=CACHE_SIZE)
def _carrier_and_region(e164: str) -> tuple[str | None, str | None]:
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None, None
    return _described(parsed)


def _described(parsed: phonenumbers.PhoneNumber) -> tuple[str | None, str | None]:
    """What ``carrier.name_for_number`` and ``geocoder.description_for_number`` answer, the number's type
    (their common first step, ~5 µs) worked out once for both."""
    kind = phonenumbers.number_type(parsed)
    carrier = ""
    if kind in CARRIER_TYPES:
        carrier = phonenumbers.carrier.name_for_valid_number(parsed, CARRIER_LANGUAGE)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        region = ""
    elif not phonenumbers.is_number_type_geographical(kind, parsed.country_code or 0):
        region = phonenumbers.geocoder.country_name_for_number(parsed, CARRIER_LANGUAGE)
    else:
        region = phonenumbers.geocoder.description_for_valid_number(parsed, CARRIER_LANGUAGE)
    return carrier or None, region or None
