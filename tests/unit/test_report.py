"""The transparency report's pure parts: periods, determinism, the module example."""

from __future__ import annotations

import doctest

import pytest

from forum_client import entries as e
from forum_client import report as report_module
from forum_client.envelope import SigningKey
from forum_client.errors import InvalidInputError
from forum_client.report import compute_report, parse_period, render_json, render_markdown


def test_the_module_example_runs() -> None:
    result = doctest.testmod(report_module, raise_on_error=False)
    assert result.attempted and not result.failed


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", "2026-01-01", "2027-01-01"),
        ("2026-Q4", "2026-10-01", "2027-01-01"),
        ("2026-02", "2026-02-01", "2026-03-01"),
        ("2026-12", "2026-12-01", "2027-01-01"),
    ],
)
def test_periods_are_half_open_utc_intervals(text: str, start: str, end: str) -> None:
    import datetime as dt

    p = parse_period(text)
    as_day = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")  # noqa: E731
    assert (as_day(p.start_unix_ms), as_day(p.end_unix_ms)) == (start, end)
    assert p.start_unix_ms in p and p.end_unix_ms not in p


@pytest.mark.parametrize("bad", ["2026-Q0", "2026-Q5", "2026-00", "2026-13", "Q3", "2026-7", ""])
def test_bad_periods_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="period"):
        parse_period(bad)


def test_a_report_depends_only_on_the_leaves_and_the_period() -> None:
    key = SigningKey.generate()
    ms = parse_period("2026-Q3").start_unix_ms + 1000
    leaves = []
    for seq in range(1, 4):
        h = e.Header("f.test", "acme", key.key_id, seq, ms)
        items = (e.SignalItem("md5", f"{seq:032x}", ("behaviour:x",), "image"),)
        body = e.Submission(h, items)
        leaves.append(key.sign(e.payload_type_of(body), e.encode(body)).leaf_bytes())
    a = compute_report(leaves, parse_period("2026-Q3"), origin="f.test")
    b = compute_report(list(leaves), parse_period("2026-Q3"), origin="f.test")
    assert render_json(a) == render_json(b) and render_markdown(a) == render_markdown(b)
    assert a["signals"]["by_type"] == {"md5": 3} and a["checkpoint"]["size"] == 3
    outside = compute_report(leaves, parse_period("2026-Q4"), origin="f.test")
    assert outside["signals"]["total"] == 0 and outside["checkpoint"] == a["checkpoint"]
    hidden = compute_report(leaves, parse_period("2026-Q3"), origin="f.test", anonymise=True)
    assert list(hidden["members"]["activity"]) == ["member-?"]  # acme was never admitted here
    # Each report names the command that recomputes it (a runnable one: --db is required).
    again = "`forum-client report --db FILE --period 2026-Q3 --at 3`"
    assert again in render_markdown(a)
    assert again.replace("3`", "3 --anonymise`") in render_markdown(hidden)
