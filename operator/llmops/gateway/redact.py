"""Redaction of personal data from captured text: pure, and cheap enough for every request.

    Redactor(["email", "phone", "card", "ip", "iban"], [("ACCOUNT", r"ACC-\\d{6}")]).redact(text)

Each span found becomes a typed placeholder: `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IP]`, `[IBAN]`, or
`[NAME]` for a user pattern. Each built-in kind finds candidates with its own regular
expression; the leftmost candidate wins, and at the same character the kind first in the order
email, IBAN, card, IP, phone (an email may hold digits, an IBAN holds a card-length run of
digits, a dotted IPv4 address looks like a phone number). A candidate is then checked, and one
that fails its check still covers its span, so its digits are not read as another kind:

- card: 13-19 digits, optionally in groups separated by single spaces or dashes, passing the
  Luhn check. A card-like number that fails it is left as it is, whole (it is not read as a phone
  number instead): order numbers and such stay readable.
- IBAN: two upper-case letters, two check digits, then 11-30 upper-case letters or digits,
  optionally in groups of four separated by spaces, whose ISO 7064 mod-97 remainder is 1. One
  that fails is left whole.
- When a candidate runs on into a following group (`DE89 3704 0044 0532 0130 00 1234`), the
  longest prefix ending at a group boundary that passes the check is redacted, the rest kept.
- ip: IPv4 dotted quads (each part 0-255) and IPv6 addresses that `ipaddress` accepts (with a
  zone or an embedded IPv4 tail); times like 10:30:45 and MAC addresses are not addresses.
- phone: `+` and a country code followed by groups (8-15 digits in all); the North American
  layouts (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567; and trunk-prefixed national
  numbers in groups (030 1234567, 07700 900123, 01 23 45 67 89). A bare run of digits is not a
  phone number (it may be anything), nor is a date such as 2024-01-15.
- email: local@domain.tld.

User patterns (Python `re` syntax) run after the built-in kinds, each over the whole text, in
their order. `compile_patterns` reports the first pattern that does not compile, by name: the
operator calls it before applying a spec, so a gateway never starts with a broken pattern.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "BUILTIN_KINDS",
    "InvalidPattern",
    "Redactor",
    "compile_patterns",
    "iban_valid",
    "luhn_valid",
]

BUILTIN_KINDS: tuple[str, ...] = ("email", "iban", "card", "ip", "phone")
"""The built-in kinds, in the order they win when two candidates start at the same character."""

# Each scanned pattern starts with a character class and checks the character before it with a
# lookbehind only then: re skips in C to the characters that can start one, which makes a pass
# over ordinary prose about four times cheaper than a leading lookbehind tried at every position.
_IBAN = r"[A-Z](?<![\w][A-Z])[A-Z][0-9]{2}(?:[A-Z0-9]{4}|[ ][A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?!\w)"
_CARD = r"[0-9](?<![\w.+-][0-9])(?:[ -]?[0-9]){12,18}(?![\w]|[.-][0-9])"
_IPV4 = r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w]|\.[0-9])"
_PHONE = (
    r"[+(0-9](?<![\w+][+(0-9])(?:"
    # international: +CC then groups, optionally one area code in parentheses
    r"(?<=\+)[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}"
    # North American layouts: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567
    r"|(?<=\()[0-9]{3}\)[ ]?[0-9]{3}[ .-][0-9]{4}"
    r"|(?<=[0-9])[0-9]{2}(?P<sep>[.-])[0-9]{3}(?P=sep)[0-9]{4}"
    r"|(?<=[0-9])[0-9]{2} [0-9]{3} [0-9]{4}"
    # trunk-prefixed national numbers in groups: 01 23 45 67 89, 030 1234567, 07700 900123
    r"|(?<=0)[0-9](?:[ .][0-9]{2}){4}"
    r"|(?<=0)[0-9]{1,4}[ /-][0-9]{3,8}(?:[ -][0-9]{2,5})?"
    r")(?![\w]|[.-][0-9])"
)
# Emails and IPv6 addresses are looked for only around their trigger character (@, :), within
# the run of characters they can be made of: scanning for them everywhere costs more than all
# the other kinds together.
_EMAIL = r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
_EMAIL_RUN = re.compile(r"[\w.@%+-]*")
_IPV6 = (
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
    r"(?:%[A-Za-z0-9]+)?(?![\w:]|\.[0-9])"
)
_IPV6_RUN = re.compile(r"[\w:.%]*")
_AT = re.compile("@")
_TWO_COLONS = re.compile(r":[0-9A-Fa-f]{0,4}:")
"""Every IPv6 address has two colons with at most four hex digits between them; prose rarely."""
_SCANNED: dict[str, re.Pattern[str]] = {
    "iban": re.compile(_IBAN),
    "card": re.compile(_CARD),
    "ip": re.compile(_IPV4),
    "phone": re.compile(_PHONE),
}
_EMAIL_RE = re.compile(_EMAIL)
_IPV6_RE = re.compile(_IPV6)
_PLACEHOLDER = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD]", "ip": "[IP]", "phone": "[PHONE]"}
_SEPARATORS = re.compile(r"[ -]")
_DIGIT = re.compile(r"[0-9]")


class InvalidPattern(ValueError):
    """A user pattern that does not compile; `name` is its placeholder name."""

    def __init__(self, name: str, regex: str, error: str) -> None:
        super().__init__(f"redaction pattern {name!r} ({regex!r}) does not compile: {error}")
        self.name = name
        self.regex = regex
        self.error = error


def compile_patterns(patterns: Iterable[tuple[str, str]]) -> list[tuple[str, re.Pattern[str]]]:
    """(name, compiled regex) for each (name, regex); raises InvalidPattern for the first that does
    not compile, or that matches the empty string (it would put a placeholder between every two
    characters)."""
    out = []
    for name, regex in patterns:
        try:
            compiled = re.compile(regex)
        except (re.error, OverflowError, RecursionError) as exc:
            raise InvalidPattern(name, regex, str(exc)) from None
        if compiled.fullmatch(""):
            raise InvalidPattern(name, regex, "it matches the empty string")
        out.append((name, compiled))
    return out


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: length 15-34, and the number formed by moving the first four characters to the
    end and replacing each letter by 10..35 leaves a remainder of 1 modulo 97 (ISO 7064)."""
    if not 15 <= len(iban) <= 34 or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _longest_valid(candidate: str, normalise: Callable[[str], str], valid: Callable[[str], bool]) -> int:
    """The length of the longest prefix of `candidate` that ends at a group boundary (a separator
    or the end) and passes `valid` once normalised; 0 when none does."""
    ends = [m.start() for m in _SEPARATORS.finditer(candidate)] + [len(candidate)]
    for end in reversed(ends):
        if valid(normalise(candidate[:end])):
            return end
    return 0


def _card_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _ipv4_ok(candidate: str) -> bool:
    return all(len(part) == 1 or (part[0] != "0" and int(part) <= 255) for part in candidate.split("."))


def _ipv6_ok(candidate: str) -> bool:
    address = candidate.split("%", 1)[0]
    if not any(ch.isalnum() for ch in address):
        return False  # "::" alone in prose (a C++ scope, an emoticon) is not worth a placeholder
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def _replacement(kind: str, found: str) -> str | None:
    """What replaces the candidate `found` of `kind` (None: it fails its check and stays)."""
    if kind == "card":
        end = _longest_valid(found, _digits, _card_ok)
        return "[CARD]" + found[end:] if end else None
    if kind == "iban":
        end = _longest_valid(found, lambda s: s.replace(" ", ""), iban_valid)
        return "[IBAN]" + found[end:] if end else None
    if kind == "phone":
        return "[PHONE]" if 7 <= len(_digits(found)) <= 15 else None
    if kind == "ip":
        return "[IP]" if (_ipv6_ok(found) if ":" in found else _ipv4_ok(found)) else None
    return _PLACEHOLDER[kind]


_Candidate = tuple[int, int, int, str]
"""(start, priority, end, kind)"""


class Redactor:
    """Replaces personal data in text by typed placeholders (see the module docstring)."""

    def __init__(self, builtins: Sequence[str], patterns: Iterable[tuple[str, str]] = ()) -> None:
        unknown = sorted(set(builtins) - set(BUILTIN_KINDS))
        if unknown:
            raise ValueError(f"unknown built-in redaction {unknown[0]!r} (known: {', '.join(BUILTIN_KINDS)})")
        self.builtins: tuple[str, ...] = tuple(k for k in BUILTIN_KINDS if k in builtins)
        self._scanned = [(BUILTIN_KINDS.index(k), k, _SCANNED[k]) for k in self.builtins if k in _SCANNED]
        self._patterns = [(f"[{name}]", compiled) for name, compiled in compile_patterns(patterns)]

    def redact(self, text: str) -> str:
        """`text` with every span found replaced by its placeholder."""
        if self.builtins:
            text = self._builtins(text)
        for placeholder, compiled in self._patterns:
            text = compiled.sub(placeholder, text)
        return text

    def _builtins(self, text: str) -> str:
        candidates = self._candidates(text)
        if not candidates:
            return text
        # Leftmost first, ties to the kind listed first; a candidate that fails its check still
        # covers its span, so that the digits of a non-card are not read as a phone number.
        candidates.sort()
        out: list[str] = []
        cursor = 0
        for start, _, end, kind in candidates:
            if start < cursor:
                continue
            replacement = _replacement(kind, text[start:end])
            if replacement is not None:
                out += (text[cursor:start], replacement)
                cursor = end
            else:
                out.append(text[cursor:end])
                cursor = end
        out.append(text[cursor:])
        return "".join(out)

    def _candidates(self, text: str) -> list[_Candidate]:
        found: list[_Candidate] = []
        if _DIGIT.search(text):  # IBANs, cards, IPv4 addresses and phone numbers all have digits
            for priority, kind, pattern in self._scanned:
                found += [(m.start(), priority, m.end(), kind) for m in pattern.finditer(text)]
        if "email" in self.builtins and "@" in text:
            found += _around(text, _AT, "_.%+-", _EMAIL_RUN, _EMAIL_RE, "email")
        if "ip" in self.builtins and ":" in text:
            found += _around(text, _TWO_COLONS, "_:.%", _IPV6_RUN, _IPV6_RE, "ip")
        return found


def _around(
    text: str, trigger: re.Pattern[str], extra: str, run: re.Pattern[str], pattern: re.Pattern[str], kind: str
) -> list[_Candidate]:
    """Candidates of `pattern` in the run around each match of `trigger`: back over letters,
    digits and `extra` (a plain loop: the run before a trigger is a few characters), forward to
    the end of `run`."""
    priority = BUILTIN_KINDS.index(kind)
    out: list[_Candidate] = []
    hit = trigger.search(text)
    while hit is not None:
        i = start = hit.start()
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in extra):
            start -= 1
        tail = run.match(text, i)
        end = tail.end() if tail is not None else i + 1  # `run` matches the empty string: always
        out += ((m.start(), priority, m.end(), kind) for m in pattern.finditer(text, start, end))
        hit = trigger.search(text, max(end, i + 1))
    return out
