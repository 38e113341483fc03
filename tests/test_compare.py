"""Output against expected output, as judges compare them (pure logic)."""

import pytest

from execbox.engine.compare import output_matches


@pytest.mark.parametrize(
    "output,expected",
    [(b"3\n", b"3"), (b"1 2  \n3\t\n\n", b"1 2\n3"), (b"", b"\n \n"), (b"a\r\n", b"a")],
)
def test_trailing_whitespace_is_ignored(output, expected):
    assert output_matches(output, expected)


@pytest.mark.parametrize(
    "output,expected",
    [(b"3\n", b"4"), (b" 3", b"3"), (b"1\n\n2", b"1\n2"), (b"a b", b"a  b"), (b"", b"0")],
)
def test_anything_else_differs(output, expected):
    assert not output_matches(output, expected)
