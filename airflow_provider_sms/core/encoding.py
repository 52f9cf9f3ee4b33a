"""SMS encoding and segment counting: GSM-7 (with its extension table) or UCS-2, 160/153 and 70/67,
and smart encoding (GSM-7 look-alikes for curly quotes, dashes and the like).

A text that only uses the GSM 03.38 basic and extension tables goes as GSM-7, where an extension
character costs two septets (escape + char); anything else forces UCS-2, counted in UTF-16 code units
so an emoji costs two. A long message is split into concatenated parts whose header leaves 153 septets
or 67 code units; an escape pair or a surrogate pair is never split across parts.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# (single-part capacity, capacity of each part of a concatenated message), in septets or code units
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class SegmentInfo:
    """How a text travels: ``encoding``, ``characters`` (code points), ``units`` and ``segments``."""

    encoding: str
    characters: int
    units: int
    segments: int


def _unit_costs(text: str) -> tuple[str, list[int]]:
    """The encoding a text needs and the cost of each character in that encoding's units."""
    costs: list[int] = []
    for char in text:
        if char in GSM7_BASIC:
            costs.append(1)
        elif char in GSM7_EXTENSION:
            costs.append(2)
        else:
            return UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text]
    return GSM7, costs


def count_segments(text: str) -> SegmentInfo:
    """Count the encoding, characters, units and message parts of ``text``.

    >>> count_segments("hello").segments
    1
    >>> count_segments("a" * 161).segments
    2
    """
    encoding, costs = _unit_costs(text)
    units = sum(costs)
    single, part = _LIMITS[encoding]
    if units == 0:
        return SegmentInfo(encoding, 0, 0, 0)
    if units <= single:
        return SegmentInfo(encoding, len(text), units, 1)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return SegmentInfo(encoding, len(text), units, segments)


# Characters with a GSM-7 look-alike, and what smart encoding writes instead. Punctuation and spaces
# only: letters with accents GSM-7 lacks (á, ł, ç...) carry meaning, so they keep the text in UCS-2.
LOOK_ALIKES: dict[str, str] = {
    **dict.fromkeys("‘’‚‛′‹›`´", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    "…": "...",
    "•": "-",
    "ˆ": "^",
    "˜": "~",
    "⁄": "/",
    **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", ""),  # zero-width characters and soft hyphens
}
_LOOK_ALIKE_TABLE = str.maketrans(LOOK_ALIKES)


@dataclass(frozen=True)
class SmartText:
    """A text after smart encoding: the ``text`` to send and how many characters were ``replaced``."""

    text: str
    replaced: int


def smart_encode(text: str) -> SmartText:
    """Replace GSM-7 look-alikes (curly quotes, dashes, ellipsis, odd spaces...) when that makes the
    whole text GSM-7.

    A text that needs UCS-2 anyway (an emoji, a ``ł``) is left exactly as given: replacing its quotes
    would change the text without saving a part.

    >>> smart_encode("It’s 5–6 pm…").text
    "It's 5-6 pm..."
    >>> smart_encode("It’s 😀").text
    'It’s 😀'
    """
    replaced = sum(1 for char in text if char in LOOK_ALIKES)
    if not replaced:
        return SmartText(text, 0)
    candidate = text.translate(_LOOK_ALIKE_TABLE)
    if _unit_costs(candidate)[0] != GSM7:
        return SmartText(text, 0)
    return SmartText(candidate, replaced)
