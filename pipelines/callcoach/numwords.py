"""English number words as speakers say them and recognisers write them: the one table the
transcript normaliser (``coaching/features.py``, spoken numbers to digits) and PII redaction
(``pii.py``, spoken card and account digits) both read."""

UNITS = {"zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
         "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
         "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# digits as they are read out one by one (radio and phone habits), on top of UNITS
SPOKEN_DIGITS = {"o": 0, "nought": 0, "naught": 0, "niner": 9}
