"""The redaction corpus: strings with and without personal data, each redacted exactly.

Card-like numbers that fail the Luhn check and IBAN-like strings that fail mod 97 stay as they
are; so do times, dates, hashes, UUIDs, versions with fewer than four parts, MAC addresses.
"""

from __future__ import annotations

import time

import pytest

from llmops.api.capture import BUILTIN_REDACTIONS
from llmops.gateway.redact import (
    BUILTIN_KINDS,
    InvalidPattern,
    Redactor,
    compile_patterns,
    iban_valid,
    luhn_valid,
)

ALL = Redactor(list(BUILTIN_KINDS))

CORPUS: list[tuple[str, str]] = [
    # -- nothing personal: unchanged
    ("no personal data here at all", "no personal data here at all"),
    ("", ""),
    ("The meeting is at 10:30:45 on 2024-01-15.", "The meeting is at 10:30:45 on 2024-01-15."),
    ("Price: 1,000,000 dollars in 2024, code 12345", "Price: 1,000,000 dollars in 2024, code 12345"),
    ("user@localhost is not routable", "user@localhost is not routable"),
    ("MAC 00:1A:2B:3C:4D:5E is fine; std::vector too", "MAC 00:1A:2B:3C:4D:5E is fine; std::vector too"),
    ("not an address: 999.1.1.1 nor 1.2.3", "not an address: 999.1.1.1 nor 1.2.3"),
    (
        "id 550e8400-e29b-41d4-a716-446655440000 and a UUID only",
        "id 550e8400-e29b-41d4-a716-446655440000 and a UUID only",
    ),
    (
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ),
    (
        "revision 9999999999999999999999999999999999999999 at 2026-11-30T08:13:04Z",
        "revision 9999999999999999999999999999999999999999 at 2026-11-30T08:13:04Z",
    ),
    ("Write a haiku about the sea.", "Write a haiku about the sea."),
    ("def f(x): return x ** 2  # 3.14159", "def f(x): return x ** 2  # 3.14159"),
    # -- card-like numbers that fail Luhn: unchanged, whole
    ("Order 4111 1111 1111 1112 is not a card", "Order 4111 1111 1111 1112 is not a card"),
    ("Invoice 1234567890123 failed", "Invoice 1234567890123 failed"),
    ("Tracking 1234-5678-9012-3456 shipped", "Tracking 1234-5678-9012-3456 shipped"),
    ("ref 5500000000000001", "ref 5500000000000001"),
    ("timestamp 1700000000001 ms", "timestamp 1700000000001 ms"),
    # -- IBAN-like strings that fail mod 97: unchanged, whole
    ("Bad IBAN DE89 3704 0044 0532 0130 01 stays", "Bad IBAN DE89 3704 0044 0532 0130 01 stays"),
    ("GB82WEST12345698765433 stays", "GB82WEST12345698765433 stays"),
    ("code NL00ABNA0417164300", "code NL00ABNA0417164300"),
    ("FR14 2004 1010 0505 0001 3M02 607", "FR14 2004 1010 0505 0001 3M02 607"),
    # -- emails
    ("Contact me at john.doe@example.com please.", "Contact me at [EMAIL] please."),
    ("Mail ANNA+promo@mail.co.uk, or anna@sub.domain.org.", "Mail [EMAIL], or [EMAIL]."),
    ("jürgen.müller@beispiel.de schreibt", "[EMAIL] schreibt"),
    ("<a href='mailto:ops@llmops.io'>", "<a href='mailto:[EMAIL]'>"),
    # -- phones
    ("Call +1 (415) 555-2671 tomorrow", "Call [PHONE] tomorrow"),
    ("Call +44 20 7946 0958 or +4915112345678.", "Call [PHONE] or [PHONE]."),
    ("(555) 123-4567", "[PHONE]"),
    ("fax 555-123-4567, alt 555.123.4567, 555 123 4567", "fax [PHONE], alt [PHONE], [PHONE]"),
    ("Berlin 030 1234567, mobile 07700 900123", "Berlin [PHONE], mobile [PHONE]"),
    ("Paris 01 23 45 67 89", "Paris [PHONE]"),
    ("Tel. +49 (0)89 123456-78", "Tel. [PHONE]"),
    ("tel:+14155552671;ext=12", "tel:[PHONE];ext=12"),
    # -- cards that pass Luhn
    ("Pay with 4111 1111 1111 1111 today", "Pay with [CARD] today"),
    ("Card 5500-0000-0000-0004", "Card [CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("Numbers 6011111111111117 and 4222222222222.", "Numbers [CARD] and [CARD]."),
    ("Visa 4000 0566 5566 5556", "Visa [CARD]"),
    ("Card 4111 1111 1111 1111 12 trailing", "Card [CARD] 12 trailing"),
    # -- IBANs that pass mod 97
    ("IBAN DE89 3704 0044 0532 0130 00 for the rent", "IBAN [IBAN] for the rent"),
    ("GB82 WEST 1234 5698 7654 32 and NL91ABNA0417164300", "[IBAN] and [IBAN]"),
    ("FR14 2004 1010 0505 0001 3M02 606.", "[IBAN]."),
    ("CH9300762011623852957", "[IBAN]"),
    ("to IT60X0542811101000000123456 by Friday", "to [IBAN] by Friday"),
    ("DE89 3704 0044 0532 0130 00 1234", "[IBAN] 1234"),
    # -- IP addresses
    ("Server 192.168.1.10 and 10.0.0.1.", "Server [IP] and [IP]."),
    ("IPv6 2001:db8::8a2e:370:7334 and ::1 and fe80::1%eth0", "IPv6 [IP] and [IP] and [IP]"),
    ("mapped ::ffff:192.0.2.1 here", "mapped [IP] here"),
    ("version 1.2.3.4 reads as an address", "version [IP] reads as an address"),
    # -- mixed, multi-line, in JSON
    (
        "Hi, I'm Ana (ana@example.org, +34 612 345 678).\nMy IBAN is ES91 2100 0418 4502 0005 1332.",
        "Hi, I'm Ana ([EMAIL], [PHONE]).\nMy IBAN is [IBAN].",
    ),
    (
        '{"inputs": "my card is 4012888888881881\\nand mail x@y.io"}',
        '{"inputs": "my card is [CARD]\\nand mail [EMAIL]"}',
    ),
    (
        "from 203.0.113.7 as +1-202-555-0143, card 4111111111111111, bad 4111111111111112",
        "from [IP] as [PHONE], card [CARD], bad 4111111111111112",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_the_corpus_is_redacted_exactly(text: str, expected: str) -> None:
    assert ALL.redact(text) == expected


def test_the_corpus_has_fifty_strings_with_and_without_personal_data() -> None:
    assert len(CORPUS) >= 50
    assert sum(text == expected for text, expected in CORPUS) >= 15
    assert sum(text != expected for text, expected in CORPUS) >= 30


def test_luhn_and_mod97_checks() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert luhn_valid("378282246310005") and not luhn_valid("378282246310006")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST1234")


def test_only_the_chosen_builtins_run() -> None:
    text = "a@b.io 4111 1111 1111 1111 10.0.0.1 +44 20 7946 0958 DE89370400440532013000"
    assert (
        Redactor(["email"]).redact(text)
        == "[EMAIL] 4111 1111 1111 1111 10.0.0.1 +44 20 7946 0958 DE89370400440532013000"
    )
    assert Redactor(["card", "iban"]).redact(text) == "a@b.io [CARD] 10.0.0.1 +44 20 7946 0958 [IBAN]"
    assert Redactor([]).redact(text) == text


def test_user_patterns_run_after_the_builtins_in_their_order() -> None:
    r = Redactor(["email"], [("ACCOUNT", r"ACC-\d{6}"), ("NAME", r"\b(?:Ana|Bob)\b")])
    assert (
        r.redact("Ana (ana@x.io) owns ACC-123456, Bob ACC-12")
        == "[NAME] ([EMAIL]) owns [ACCOUNT], [NAME] ACC-12"
    )


def test_the_builtin_kinds_are_the_apis() -> None:
    assert sorted(BUILTIN_KINDS) == sorted(BUILTIN_REDACTIONS)
    with pytest.raises(ValueError, match="'ssn'"):
        Redactor(["ssn"])


@pytest.mark.parametrize(
    ("regex", "reason"),
    [("ACC-(\\d+", "missing \\)"), ("[z-a]", "bad character range"), ("x*", "empty string")],
)
def test_a_pattern_that_does_not_compile_is_named(regex: str, reason: str) -> None:
    with pytest.raises(InvalidPattern, match=reason) as err:
        compile_patterns([("OK", "fine"), ("BROKEN", regex)])
    assert err.value.name == "BROKEN" and "'BROKEN'" in str(err.value)


def test_redaction_never_backtracks_catastrophically() -> None:
    # Not a speed measurement (make bench-gateway measures capture's cost per request): a guard
    # against a pattern whose backtracking explodes on long runs of digits and separators, which
    # takes seconds, not the ~0.3 ms a 2 kB text takes. The bound is 100x that, so a loaded
    # machine cannot fail it.
    typical = ("Please summarise the thread with ana@example.org about invoice 1234567890123. " * 25)[:2000]
    digits = "1 2-3 4 5-6 7 8 9 0 " * 100 + "x"
    for text in (typical, digits):
        started = time.perf_counter()
        for _ in range(20):
            ALL.redact(text)
        per_call = (time.perf_counter() - started) / 20
        assert per_call < 0.03, f"{per_call * 1e6:.0f} us per {len(text)} characters"
