"""The variables Apache's parent sets for a supervisor are documented and reserved.

sg_exec_plan.c sets them (SG_SETENV), sg_options.c refuses them in `env=` (a group could
otherwise override its own token or socket), and docs/architecture.md's contract lists them.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _read(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def set_by_the_parent() -> set[str]:
    return set(re.findall(r'SG_SETENV\(env, p, "(SWIFT_GATEWAY_[A-Z_]+|LISTEN_[A-Z_]+)"', _read("CModule/sg_exec_plan.c")))


def reserved() -> set[str]:
    text = _read("CModule/sg_options.c")
    table = text[text.index("sg_reserved_env_names[]"):]
    table = table[:table.index("NULL")]
    return set(re.findall(r'"([A-Z_]+)"', table))


def test_the_parent_sets_the_contract_variables():
    assert "SWIFT_GATEWAY_TOKEN" in set_by_the_parent(), "SG_SETENV calls not found in sg_exec_plan.c"


def test_every_variable_the_parent_sets_is_reserved():
    missing = set_by_the_parent() - reserved()
    assert not missing, f"set for the supervisor but allowed in env=: {sorted(missing)}"


def test_every_variable_the_parent_sets_is_documented():
    contract = _read("docs/architecture.md")
    missing = sorted(name for name in set_by_the_parent() if not re.search(rf"`{name}[`=]", contract))
    assert not missing, f"set for the supervisor but not in docs/architecture.md: {missing}"
