"""Version strings: execbox's prefixes and Piston's semver ranges (pure logic)."""

from __future__ import annotations

import pytest

from execbox.engine.versions import BadVersion, version_matches

HAVE = "3.11.7"


@pytest.mark.parametrize(
    "wanted",
    [
        "*",
        "",
        "latest",
        "3",
        "3.11",
        "3.11.7",
        "3.x",
        "3.11.x",
        "v3.11.7",
        "=3.11.7",
        "^3.10",
        "^3.11.2",
        "~3.11",
        ">=3.10 <4",
        ">3.10",
        "<=3.11",
        "3.8 - 3.11",
        "2.x || 3.11.x",
    ],
)
def test_selects(wanted):
    assert version_matches(wanted, HAVE)


@pytest.mark.parametrize(
    "wanted", ["4", "3.12", "3.11.8", "^3.12", "~3.10", ">=3.12", "<3.11.7", ">3.11", "2.x || 4"]
)
def test_does_not_select(wanted):
    assert not version_matches(wanted, HAVE)


def test_caret_on_zero_major_pins_the_minor():
    assert version_matches("^0.4.1", "0.4.9") and not version_matches("^0.4.1", "0.5.0")


@pytest.mark.parametrize("wanted", ["banana", ">=", "3.11 !"])
def test_garbage_is_an_error(wanted):
    with pytest.raises(BadVersion):
        version_matches(wanted, HAVE)
