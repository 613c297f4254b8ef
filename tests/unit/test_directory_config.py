"""``[directory]`` (issue 12): off by default; each mistake named with its key and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dockd.config import parse_config
from dockd.errors import ConfigError


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="dockd.toml")
    return "\n".join(info.value.problems)


def test_no_directory_by_default() -> None:
    assert not parse_config("").directory.enabled


def test_a_template_and_a_search_are_read() -> None:
    cfg = parse_config(
        '[directory]\nurl = "ldaps://dc.example.org"\n'
        'bind_dn_template = "uid={login},ou=people,dc=example,dc=org"\n'
    ).directory
    assert cfg.enabled and not cfg.searches
    cfg = parse_config(
        '[directory]\nurl = "ldaps://dc.example.org:636"\n'
        'search_base = "ou=people,dc=example,dc=org"\n'
        'search_filter = "(sAMAccountName={login})"\n'
        'bind_dn = "cn=dockd,dc=example,dc=org"\n'
        'bind_password_file = "/etc/dockd/directory.pw"\n'
    ).directory
    assert cfg.searches and cfg.timeout_s == 10


def test_each_field_mistake_names_its_key_and_line() -> None:
    text = problems(
        "[directory]\n"
        'url = "http://dc.example.org"\n'
        'bind_dn_template = "uid=jdoe,ou=people"\n'
        'search_filter = "sAMAccountName={login}"\n'
        'bind_password_file = "directory.pw"\n'
        "timeout_s = 0\n"
    )
    assert "line 2: directory.url: 'http://dc.example.org' is not an LDAP URL" in text
    assert "line 3: directory.bind_dn_template: 'uid=jdoe,ou=people' has no {login}" in text
    assert "line 4: directory.search_filter: 'sAMAccountName={login}' is not an LDAP filter" in (
        text
    )
    assert "line 5: directory.bind_password_file: 'directory.pw' must be an absolute path" in text
    assert "line 6: directory.timeout_s:" in text


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('search_base = "ou=people,dc=example,dc=org"', "search_base is set but search_filter"),
        ('search_filter = "(uid={login})"', "search_filter is set but search_base"),
        ('bind_dn = "cn=dockd,dc=example,dc=org"', "bind_dn and bind_password_file go together"),
        ('bind_dn_template = "uid={login}{x}"', "only {login} may stand in braces"),
    ],
)
def test_an_incomplete_section_is_named(keys: str, message: str) -> None:
    text = problems(f'[directory]\nurl = "ldaps://dc.example.org"\n{keys}\n')
    assert text.startswith("line ") and "directory" in text
    assert message in text


def test_the_service_password_is_never_in_the_file() -> None:
    assert "unknown key" in problems('[directory]\nbind_password = "secret"\n')


def test_the_commented_example_section_is_valid() -> None:
    """config.example.toml's [directory] block, uncommented, is a working section."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    block = text[text.index("# [directory]") :].split("\n\n", 1)[0]
    keys = [m.group(1) for m in re.finditer(r"^# (\[directory\]|[a-z_]+ = .*)$", block, re.M)]
    assert len(keys) == 10
    cfg = parse_config("\n".join(keys) + "\n").directory
    assert cfg.url == "ldaps://dc.example.org" and cfg.bind_dn_template and cfg.searches is False
