"""Every log message number (SGnnnn) is documented, and every documented one exists.

docs/operations.md gives each message a heading (`### SGnnnn ...`) or a table row
(`| SGnnnn ...`) that starts with its number (or with a few numbers, `SG0205, SG0206` or
`SG1201 / SG1202`, for messages that share a cause and a fix); the code of
the Apache module (CModule/) and of the Swift runtime (Sources/) writes them.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
CODE = re.compile(r"SG[0-9]{4}")
ENTRY = re.compile(r"^(?:### |\| )(SG[0-9]{4}(?:(?:, | / )SG[0-9]{4})*)\b", re.MULTILINE)


def codes_in_code() -> dict[str, list[str]]:
    """Each number used in the product's source, with the files that use it."""
    found: dict[str, list[str]] = {}
    for folder in ("CModule", "Sources"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".c", ".h", ".swift"):
                continue
            for code in set(CODE.findall(path.read_text(encoding="utf-8"))):
                found.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return found


def documented_rows() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    return [code for entry in ENTRY.findall(text) for code in CODE.findall(entry)]


def test_the_product_writes_log_numbers():
    assert len(codes_in_code()) > 50, "no SGnnnn found in CModule/ or Sources/: wrong root?"


def test_every_number_in_the_code_is_documented():
    documented = set(documented_rows())
    missing = {code: files for code, files in codes_in_code().items() if code not in documented}
    assert not missing, f"used but not documented in docs/operations.md: {missing}"


def test_every_documented_number_is_used():
    used = codes_in_code()
    unused = sorted(code for code in set(documented_rows()) if code not in used)
    assert not unused, f"documented in docs/operations.md but used nowhere in CModule/ or Sources/: {unused}"


def test_each_number_is_documented_once():
    rows = documented_rows()
    twice = sorted({code for code in rows if rows.count(code) > 1})
    assert not twice, f"documented more than once in docs/operations.md: {twice}"
