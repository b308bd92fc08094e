"""Labelled free-text samples for the identifier detector: real-format positives and look-alike negatives.

Positives use published test values: card numbers from the networks' test ranges, IBANs from
the ISO 13616 / SWIFT registry examples, national ids from python-stdnum's documentation,
phone numbers in fictional or public-service ranges of several countries.
"""

from __future__ import annotations

#: (text, [(kind, exact substring found)])
LABELLED: list[tuple[str, list[tuple[str, str]]]] = [
    ("write to ann@example.org today", [("email", "ann@example.org")]),
    ("Contact: John Doe <john.doe+tag@sub.example.co.uk>.", [("email", "john.doe+tag@sub.example.co.uk")]),
    ("mail: müller@beispiel.de, thanks", [("email", "müller@beispiel.de")]),
    ("visa 4111111111111111 expires 12/29", [("card", "4111111111111111")]),
    ("mastercard 5555 5555 5555 4444 on file", [("card", "5555 5555 5555 4444")]),
    (
        "amex 378282246310005, discover 6011-1111-1111-1117",
        [("card", "378282246310005"), ("card", "6011-1111-1111-1117")],
    ),
    ("jcb 3530111333300000", [("card", "3530111333300000")]),
    ("pay to DE89 3704 0044 0532 0130 00 please", [("iban", "DE89 3704 0044 0532 0130 00")]),
    ("iban GB82 WEST 1234 5698 7654 32.", [("iban", "GB82 WEST 1234 5698 7654 32")]),
    (
        "FR1420041010050500013M02606 and NL91ABNA0417164300",
        [("iban", "FR1420041010050500013M02606"), ("iban", "NL91ABNA0417164300")],
    ),
    ("lower case ch9300762011623852957 too", [("iban", "ch9300762011623852957")]),
    ("call (415) 555-2671 after five", [("phone", "(415) 555-2671")]),
    ("London office +44 20 7946 0958", [("phone", "+44 20 7946 0958")]),
    ("Berlin 030 901820 or +49 30 901820", [("phone", "030 901820"), ("phone", "+49 30 901820")]),
    ("Paris +33 1 42 68 53 00", [("phone", "+33 1 42 68 53 00")]),
    ("Tokyo +81 3-3224-9999", [("phone", "+81 3-3224-9999")]),
    ("White House +1 202-456-1111", [("phone", "+1 202-456-1111")]),
    ("ssn 536-90-4399", [("national_id", "536-90-4399")]),
    ("DNI 54362315K, NIE X2482300W", [("national_id", "54362315K"), ("national_id", "X2482300W")]),
    ("NIR 2 95 10 99 126 111 93", [("national_id", "2 95 10 99 126 111 93")]),
    ("codice fiscale RCCMNL83S18D969H", [("national_id", "RCCMNL83S18D969H")]),
    ("personnummer 880320-0016, hetu 131052-308T", [("national_id", "880320-0016"), ("national_id", "131052-308T")]),
    ("PESEL 44051401359", [("national_id", "44051401359")]),
    ("CPF 390.533.447-05", [("national_id", "390.533.447-05")]),
    ("aadhaar 2341 2341 2346", [("national_id", "2341 2341 2346")]),
    (
        "Ann (ann@example.org, +44 20 7946 0958) paid with 4111 1111 1111 1111 from GB82 WEST 1234 5698 7654 32",
        [
            ("email", "ann@example.org"),
            ("phone", "+44 20 7946 0958"),
            ("card", "4111 1111 1111 1111"),
            ("iban", "GB82 WEST 1234 5698 7654 32"),
        ],
    ),
]

#: Texts with no identifier at all (dates, versions, amounts, hashes, ids of things).
NEGATIVES: list[str] = [
    "released version 2.14.3 on 2024-01-15 at 10:30:00",
    "build 20240115103000 of release 10.0.19045.3803",
    "dates 15/01/2024, 01-15-2024, 2024.01.15 and 15.01.2024",
    "ip 192.168.1.254 and 10.0.0.1, port 8080",
    "pi is 3.14159265358979, total 1,234,567.89 EUR",
    "ISBN 978-3-16-148410-0, ISSN 0317-8471",
    "uuid 550e8400-e29b-41d4-a716-446655440000",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "invalid ssn 000-12-3456, 666-12-3456 and 123-00-4567",
    "order 4111111111111112 failed Luhn",
    "not an address: user@, @example.org, a@b, x@localhost",
    "account DE89 3704 0044 0532 0130 01 has a bad check digit",
    "temperature 36.6, weight 72 kg, height 180 cm, score 0.9731",
    "the model v3 scored 12345 on 2023-12-31T23:59:59Z",
    "coordinates 48.8566, 2.3522 and -33.8688, 151.2093",
]
