"""The assessment configuration's checks and defaults, the bands and grades, periods in China time,
and scores when an indicator is not available (漏报率 before patrol exists)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workflows.evaluation_config import DEFAULT_CONFIG, ConfigError, band_score, grade_of, validate_config
from workflows.evaluations import _components, _score, dimensions_of, period_of, scheme_of
from workflows.indicators import COUNTERS, rates


def test_the_defaults_are_a_valid_configuration_and_parts_left_out_keep_them():
    assert validate_config({}) == DEFAULT_CONFIG
    changed = validate_config({"denominator": {"deferred": "exclude"}})
    assert changed["denominator"] == {"deferred": "exclude", "invalid_and_merged": "exclude"}
    assert changed["schemes"] == DEFAULT_CONFIG["schemes"]


@pytest.mark.parametrize("config, field, words", [
    ({"schemes": {"department": {"closing_rate": 60, "filed_score": 30}}}, "schemes.department", "sum to 100"),
    ({"schemes": {"region": {"closing_rate": 100.5, "filed_score": -0.5}}}, "schemes.region", "0 to 100"),
    ({"schemes": {"supervisor": {"smiles": 100}}}, "schemes.supervisor", "unknown indicator"),
    ({"schemes": {"supervisor": {"closing_rate": True}}}, "schemes.supervisor", "number"),
    ({"bands": {"filed_score": [{"min": 1, "max": None, "score": 5}]}}, "bands.filed_score", "start at 0"),
    ({"bands": {"filed_score": [{"min": 0, "max": 9, "score": 5}]}}, "bands.filed_score", "no upper bound"),
    ({"bands": {"filed_score": [{"min": 0, "max": 9, "score": 5}, {"min": 9, "max": None, "score": 1}]}},
     "bands.filed_score", "overlap"),
    ({"bands": {"filed_score": [{"min": 0, "max": 9, "score": 5}, {"min": 11, "max": None, "score": 1}]}},
     "bands.filed_score", "counts 10 to 10"),
    ({"grades": [{"grade": "A", "min": 60}, {"grade": "B", "min": 60}, {"grade": "C", "min": 0}]}, "grades", "overlap"),
    ({"grades": [{"grade": "A", "min": 90}, {"grade": "A", "min": 0}]}, "grades", "distinct"),
    ({"denominator": {"invalid_and_merged": "maybe"}}, "denominator.invalid_and_merged", "one of"),
])
def test_a_bad_configuration_names_its_field(config, field, words):
    with pytest.raises(ConfigError) as refused:
        validate_config(config)
    assert field in refused.value.fields and words in " ".join(refused.value.fields[field])


def test_bands_and_grades_cover_every_value():
    bands = DEFAULT_CONFIG["bands"]["filed_score"]
    assert [band_score(bands, n) for n in (0, 50, 51, 100, 101, 1000, 1001, 10**9)] == [100, 100, 90, 90, 75, 40, 0, 0]
    grades = DEFAULT_CONFIG["grades"]
    assert [grade_of(grades, s) for s in (100, 90, 89.99, 75, 60, 40, 39.99, 0)] == ["A", "A", "B", "B", "C", "D",
                                                                                   "E", "E"]


def test_periods_are_counted_in_china_time():
    september = period_of("2026-09")
    assert september.start == datetime(2026, 8, 31, 16, 0, tzinfo=UTC)
    assert september.end == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    q4, year = period_of("2026-Q4"), period_of("2026")
    assert (q4.start, q4.end) == (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC))
    assert (year.start, year.end) == (datetime(2025, 12, 31, 16, tzinfo=UTC), q4.end)
    for bad in ("2026-13", "2026-Q5", "26", "September"):
        with pytest.raises(ValueError):
            period_of(bad)


def test_groupings_and_their_schemes():
    assert scheme_of(dimensions_of("region:district,post:inspector")) == "inspector"
    assert scheme_of(dimensions_of("department,category")) == "department"
    assert scheme_of(dimensions_of("region:town")) == "region"
    for bad in ("", "post:mayor", "post:inspector,post:supervisor", "tenant,tenant"):
        with pytest.raises(ValueError):
            dimensions_of(bad)


def test_an_inspector_without_patrol_data_is_scored_on_what_is_known():
    """漏报率 is not available and there are no patrol reports: their 40 + 20 are shared out, so the
    score is that of 按时核实率 and 按时核查率 alone (both weighted 20: their mean)."""
    counts = dict.fromkeys(COUNTERS, 0)
    counts.update(decided=4, decided_on_time=3, verified=2, verified_on_time=2)
    components = _components(rates(counts), counts, DEFAULT_CONFIG)
    assert components["not_missed_rate"] is None and components["valid_report_rate"] is None
    score, grade, missing = _score(components, DEFAULT_CONFIG["schemes"]["inspector"], DEFAULT_CONFIG["grades"])
    assert (score, grade, missing) == (87.5, "B", ["not_missed_rate", "valid_report_rate"])
