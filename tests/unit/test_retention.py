"""Retention decisions with their reasons, on hand-made snapshot times: each rule of restic's
forget, its periods (in the snapshot's own UTC offset), its counts, and durations."""

from __future__ import annotations

from datetime import datetime

import pytest

from snapfs.retention import Duration, Policy, apply_policy, group_key, plan_forget
from snapfs.snapshot import Snapshot


def _snap(when: str, *, tags: tuple[str, ...] = (), host: str = "h", path: str = "/p") -> Snapshot:
    return Snapshot(time=when, host=host, user="u", paths=[path], tree="00", id=when,
                    tags=list(tags))  # fmt: skip


def _decide(policy: Policy, *times: str, **kw: object) -> dict[str, list[str]]:
    """Snapshot time -> reasons, for the kept ones only."""
    decisions = apply_policy([_snap(t) for t in times], policy, **kw)  # type: ignore[arg-type]
    newest_first = sorted(times, key=datetime.fromisoformat, reverse=True)
    assert [d.snapshot.id for d in decisions] == newest_first
    for d in decisions:
        assert d.keep == bool(d.reasons)
    return {d.snapshot.id: d.reasons for d in decisions if d.keep}


DAYS = ["2023-03-01T10:00:00+00:00", "2023-03-01T12:00:00+00:00", "2023-03-02T09:00:00+00:00",
        "2023-03-04T08:00:00+00:00", "2023-03-04T20:00:00+00:00"]  # fmt: skip


def test_keep_last_keeps_the_newest_n() -> None:
    assert _decide(Policy(last=2), *DAYS) == {
        DAYS[4]: ["last snapshot"],
        DAYS[3]: ["last snapshot"],
    }


def test_keep_daily_keeps_the_newest_of_each_day_while_counts_last() -> None:
    assert _decide(Policy(daily=2), *DAYS) == {
        DAYS[4]: ["daily snapshot"], DAYS[2]: ["daily snapshot"],
    }  # fmt: skip


def test_counts_left_at_the_oldest_keep_it_too_unless_told_not_to() -> None:
    expected = {d: ["daily snapshot"] for d in (DAYS[4], DAYS[2], DAYS[1], DAYS[0])}
    assert _decide(Policy(daily=5), *DAYS) == expected
    del expected[DAYS[0]]
    assert _decide(Policy(daily=5, keep_oldest=False), *DAYS) == expected
    # Counts used up before the oldest: it goes.
    assert DAYS[0] not in _decide(Policy(daily=3), *DAYS)


def test_minus_one_is_unlimited() -> None:
    months = [f"2022-{m:02}-15T00:00:00+00:00" for m in range(1, 13)]
    kept = _decide(Policy(monthly=-1, keep_oldest=False), *months, "2022-12-20T00:00:00+00:00")
    assert sorted(kept) == [*months[:11], "2022-12-20T00:00:00+00:00"]


def test_rules_add_their_reasons_in_order() -> None:
    kept = _decide(Policy(last=1, daily=1, yearly=1, within=Duration(hours=1)), *DAYS)
    assert kept[DAYS[4]] == ["within 1h", "last snapshot", "daily snapshot", "yearly snapshot"]


def test_hourly_weekly_yearly_periods() -> None:
    hours = ["2023-01-01T10:05:00+00:00", "2023-01-01T10:55:00+00:00", "2023-01-01T11:00:00+00:00"]
    assert sorted(_decide(Policy(hourly=5, keep_oldest=False), *hours)) == hours[1:]
    # ISO weeks: Sunday 2021-01-03 is week 53 of 2020; Monday 2021-01-04 starts week 1.
    weeks = ["2021-01-03T12:00:00+00:00", "2021-01-04T12:00:00+00:00", "2021-01-10T12:00:00+00:00"]
    assert sorted(_decide(Policy(weekly=5, keep_oldest=False), *weeks)) == [weeks[0], weeks[2]]
    years = ["2020-06-01T00:00:00+00:00", "2020-12-31T23:00:00+00:00", "2021-01-01T00:00:00+00:00"]
    assert sorted(_decide(Policy(yearly=5, keep_oldest=False), *years)) == years[1:]


def test_periods_are_taken_in_the_snapshots_own_utc_offset() -> None:
    # 23:30 at UTC-5 on Jan 1 is 04:30 UTC on Jan 2, after the other one: two days, not one.
    times = ["2023-01-01T23:30:00-05:00", "2023-01-02T01:00:00+00:00"]
    assert len(_decide(Policy(daily=2, keep_oldest=False), *times)) == 2


def test_within_counts_back_from_the_newest_snapshot_not_from_now() -> None:
    times = ["2020-01-01T00:00:00+00:00", "2020-01-08T00:00:00+00:00", "2020-01-09T23:00:00+00:00",
             "2020-01-10T00:00:00+00:00"]  # fmt: skip
    kept = _decide(Policy(within=Duration(days=2)), *times)
    assert sorted(kept) == times[2:]  # exactly 2 days before the newest is not within
    assert kept[times[2]] == ["within 2d"]


def test_a_snapshot_in_the_future_is_not_the_newest_for_within() -> None:
    now = datetime.fromisoformat("2020-01-10T00:00:00+00:00")
    times = ["2020-01-05T00:00:00+00:00", "2020-01-09T12:00:00+00:00", "2020-02-01T00:00:00+00:00"]
    kept = _decide(Policy(within=Duration(days=1)), *times, now=now)
    assert sorted(kept) == times[1:]  # measured from Jan 9, 12:00; the future one is newer


def test_within_periods_keep_one_per_period_inside_the_span() -> None:
    times = ["2020-01-01T10:00:00+00:00", "2020-01-05T09:00:00+00:00", "2020-01-05T18:00:00+00:00",
             "2020-01-06T07:00:00+00:00", "2020-01-06T08:00:00+00:00"]  # fmt: skip
    kept = _decide(Policy(within_daily=Duration(days=3)), *times)
    assert kept == {times[4]: ["daily within 3d"], times[2]: ["daily within 3d"]}


def test_tags_keep_snapshots_with_all_of_a_set() -> None:
    snaps = [_snap("2020-01-01T00:00:00+00:00", tags=("a", "b", "c")),
             _snap("2020-01-02T00:00:00+00:00", tags=("a",)),
             _snap("2020-01-03T00:00:00+00:00")]  # fmt: skip
    decisions = apply_policy(snaps, Policy(tags=(frozenset({"a", "b"}), frozenset({"c"}))))
    assert [(d.snapshot.id[:10], d.reasons) for d in decisions] == [
        ("2020-01-03", []), ("2020-01-02", []),
        ("2020-01-01", ["has tags ['a', 'b']", "has tags ['c']"]),
    ]  # fmt: skip


def test_an_empty_policy_keeps_everything() -> None:
    assert _decide(Policy(), *DAYS) == {d: ["policy is empty"] for d in DAYS}
    assert apply_policy([], Policy(last=1)) == []


def test_durations_parse_print_and_count_back_like_go() -> None:
    assert Duration.parse("1y2m3d4h") == Duration(1, 2, 3, 4)
    assert Duration.parse("36h") == Duration(hours=36)
    assert str(Duration(1, 0, 7, 0)) == "1y7d" and str(Duration()) == "0h"
    assert not Duration() and Duration(hours=1)
    for bad in ("", "3w", "1d2", "d"):
        with pytest.raises(ValueError, match=f"invalid duration '{bad}': use e.g. 1y6m7d12h"):
            Duration.parse(bad)
    when = datetime.fromisoformat("2023-03-31T12:00:00+00:00")
    # Go's AddDate normalises Feb 31 to Mar 3.
    assert Duration(months=1).before(when) == datetime.fromisoformat("2023-03-03T12:00:00+00:00")
    assert Duration(years=1, months=3).before(when) == datetime.fromisoformat(
        "2021-12-31T12:00:00+00:00"
    )
    assert Duration(days=31, hours=13).before(when) == datetime.fromisoformat(
        "2023-02-27T23:00:00+00:00"
    )


def test_groups_by_host_paths_and_tags() -> None:
    a1 = _snap("2020-01-01T00:00:00+00:00", host="a", path="/x", tags=("t",))
    a2 = _snap("2020-01-02T00:00:00+00:00", host="a", path="/y")
    b1 = _snap("2020-01-03T00:00:00+00:00", host="b", path="/x", tags=("t",))
    assert group_key(a1, ("host", "paths", "tags")) == ("a", ("/x",), ("t",))
    assert group_key(a1, ()) == ()
    plan = plan_forget([b1, a2, a1], Policy(last=1))
    assert {k: [d.snapshot.id[:10] for d in ds if d.keep] for k, ds in plan.items()} == {
        ("a", ("/x",)): ["2020-01-01"], ("a", ("/y",)): ["2020-01-02"],
        ("b", ("/x",)): ["2020-01-03"],
    }  # fmt: skip
    assert list(plan_forget([b1, a2, a1], Policy(last=1), ("tags",))) == [(("t",),), ((),)]
    only = plan_forget([b1, a2, a1], Policy(last=1), ())
    assert [d.keep for d in only[()]] == [True, False, False]


def test_periods_differ_whenever_any_of_their_fields_does() -> None:
    # Day 1 at 02:00 and day 2 at 01:00 are different hours; Jan 2 and Feb 1 different days.
    hours = ["2020-01-01T02:00:00+00:00", "2020-01-02T01:00:00+00:00"]
    assert len(_decide(Policy(hourly=2, keep_oldest=False), *hours)) == 2
    days = ["2020-01-02T00:00:00+00:00", "2020-02-01T00:00:00+00:00", "2021-01-01T00:00:00+00:00"]
    assert len(_decide(Policy(daily=3, keep_oldest=False), *days)) == 3
    months = ["2020-02-01T00:00:00+00:00", "2021-01-01T00:00:00+00:00"]
    assert len(_decide(Policy(monthly=2, keep_oldest=False), *months)) == 2
    weeks = ["2020-01-06T00:00:00+00:00", "2021-01-11T00:00:00+00:00"]  # week 2 of each year
    assert len(_decide(Policy(weekly=2, keep_oldest=False), *weeks)) == 2


def test_the_oldest_of_a_long_history_is_found() -> None:
    times = [f"2020-01-01T{m // 60:02}:{m % 60:02}:00+00:00" for m in range(300)]
    assert sorted(_decide(Policy(daily=2), *times)) == [times[0], times[-1]]


def test_a_snapshot_taken_exactly_now_is_not_the_newest_for_within() -> None:
    now = datetime.fromisoformat("2020-01-10T00:00:00+00:00")
    times = ["2020-01-07T00:00:00+00:00", "2020-01-09T00:00:00+00:00", "2020-01-10T00:00:00+00:00"]
    assert sorted(_decide(Policy(within=Duration(days=1)), *times, now=now)) == times[1:]


def test_when_every_snapshot_is_in_the_future_within_keeps_them_all() -> None:
    now = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
    times = ["2020-01-01T00:00:00+00:00", "2020-03-01T00:00:00+00:00", "2020-06-01T00:00:00+00:00"]
    assert sorted(_decide(Policy(within=Duration(days=1)), *times, now=now)) == times


def test_a_tag_set_equal_to_the_snapshots_tags_keeps_it() -> None:
    decisions = apply_policy([_snap("2020-01-01T00:00:00+00:00", tags=("a",))],
                             Policy(tags=(frozenset({"a"}),)))  # fmt: skip
    assert decisions[0].reasons == ["has tags ['a']"]


@pytest.mark.parametrize(
    ("text", "duration"),
    [("7d", Duration(days=7)), ("2y", Duration(years=2)), ("5m", Duration(months=5)),
     ("3h", Duration(hours=3)), ("1y1h", Duration(years=1, hours=1))],
)  # fmt: skip
def test_each_unit_of_a_duration_alone(text: str, duration: Duration) -> None:
    assert Duration.parse(text) == duration
    assert str(duration) == text


def test_weeks_of_one_year_are_periods_of_their_own() -> None:
    weeks = ["2021-01-04T12:00:00+00:00", "2021-01-11T12:00:00+00:00", "2021-01-17T12:00:00+00:00"]
    assert sorted(_decide(Policy(weekly=3, keep_oldest=False), *weeks)) == weeks[:1] + weeks[2:]


def test_within_periods_start_strictly_after_the_span() -> None:
    times = ["2020-01-07T00:00:00+00:00", "2020-01-08T12:00:00+00:00", "2020-01-10T00:00:00+00:00"]
    kept = _decide(Policy(within_daily=Duration(days=3)), *times)
    assert sorted(kept) == times[1:]  # exactly 3 days before the newest is outside


def test_counting_back_across_years_and_from_december() -> None:
    dec = datetime.fromisoformat("2023-12-15T06:00:00+00:00")
    assert Duration(days=1).before(dec) == datetime.fromisoformat("2023-12-14T06:00:00+00:00")
    mar = datetime.fromisoformat("2023-03-31T00:00:00+00:00")
    assert Duration(years=3).before(mar) == datetime.fromisoformat("2020-03-31T00:00:00+00:00")
