"""Notice texts (zh-CN with English fallback) and SMS segment counting and truncation."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.sms_segments import GSM7, UCS2, count_segments, truncate_to_segments
from notifications.templates import KINDS, WARNING, render, render_sms, warning_level

CASE = {"case_no": "GL-2026-0001", "category": "扬尘", "address": "海州区朝阳路12号",
        "due": datetime(2026, 3, 2, 12, 0), "assignee": "张三", "urged_by": "李局长", "comment": "尽快处置",
        "result": "已整改", "stage": "甄别 review",
        "url": "https://gridloop.example/cases/1",
        "level": "II", "station": "新浦站", "pollutant": "PM2.5", "value": 180, "unit": "μg/m³", "limit": 75,
        "observed_at": "09:00", "ack_url": "https://gridloop.example/ack/abc"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_kind_renders_in_both_languages(kind, locale):
    notice = render(kind, CASE, locale)
    assert notice.title and notice.text
    assert "$" not in notice.title + notice.text and "—" not in notice.text


def test_dispatch_reads_as_expected():
    notice = render("dispatch", CASE)
    assert notice.title == "【案件派遣】GL-2026-0001"
    assert notice.text == (
        "您有新的案件待处置：GL-2026-0001，扬尘，地点：海州区朝阳路12号。请于2026-03-02 12:00前签收并处置。"
    )
    assert notice.url == "https://gridloop.example/cases/1"


def test_an_unknown_locale_falls_back_to_english_and_a_language_matches_its_region():
    assert render("urge", CASE, "fr-FR").title == "Urged: GL-2026-0001"
    assert render("urge", CASE, "zh").title == "【督办】GL-2026-0001"


def test_missing_values_render_as_a_dash_and_values_are_never_interpreted():
    notice = render("urge", {"case_no": "${comment} {0.__class__}", "comment": "$case_no"})
    assert notice.title == "【督办】${comment} {0.__class__}"
    assert notice.text == "—督办案件${comment} {0.__class__}：$case_no。请于—前办结。"


@pytest.mark.parametrize("level, label", [
    (1, "Ⅰ级（红色）"), ("II", "Ⅱ级（橙色）"), ("3", "Ⅲ级（黄色）"), ("Ⅳ级", "Ⅳ级（蓝色）"),
])
def test_warning_levels(level, label):
    notice = render(WARNING, {**CASE, "level": level})
    assert notice.title == f"【{label}预警】新浦站"
    assert notice.url == "https://gridloop.example/ack/abc"  # the acknowledgement link


def test_english_warning_and_bad_level():
    assert render(WARNING, CASE, "en").title == "Level II (orange) warning: 新浦站"
    with pytest.raises(ValueError):
        warning_level("V")
    with pytest.raises(ValueError):
        render("no-such-kind", CASE)


def test_sms_keeps_the_acknowledgement_link_whole_when_cut():
    text = render_sms(WARNING, {**CASE, "station": "新浦站" * 20}, max_segments=1)
    assert text.endswith("… https://gridloop.example/ack/abc")
    assert count_segments(text).count == 1


@pytest.mark.parametrize("text, encoding, count", [
    ("", GSM7, 0),
    ("a" * 160, GSM7, 1),
    ("a" * 161, GSM7, 2),
    ("a" * 306, GSM7, 2),
    ("a" * 307, GSM7, 3),
    ("€" * 80, GSM7, 1),  # extension characters take two septets
    ("€" * 81, GSM7, 2),  # 162 septets: 152 + 10
    ("a" * 152 + "€" + "a" * 152, GSM7, 3),  # 306 septets, but the € may not straddle: 152 + 153 + 1
    ("中" * 70, UCS2, 1),
    ("中" * 71, UCS2, 2),
    ("中" * 134, UCS2, 2),
    ("中" * 135, UCS2, 3),
    ("a" * 159 + "é", GSM7, 1),
    ("a" * 69 + "ć", UCS2, 1),  # one non-GSM character makes the whole text UCS-2
    ("😀" * 35, UCS2, 1),  # surrogate pairs: two units each
    ("😀" * 36, UCS2, 2),
])
def test_segment_counting(text, encoding, count):
    segments = count_segments(text)
    assert (segments.encoding, segments.count) == (encoding, count)


def test_truncation_uses_an_ellipsis_that_keeps_the_encoding():
    gsm = truncate_to_segments("word " * 100, 2)
    assert gsm.endswith("...")
    assert (count_segments(gsm).encoding, count_segments(gsm).count) == (GSM7, 2)
    zh = truncate_to_segments("中" * 200, 1)
    assert zh == "中" * 69 + "…"
    assert truncate_to_segments("short", 1) == "short"
    with pytest.raises(ValueError):
        truncate_to_segments("x", 0)


@given(text=st.text(max_size=600), suffix=st.sampled_from(["", " https://g.example/a/1", " 确认：https://g.example/a"]),
       max_segments=st.integers(min_value=1, max_value=4))
def test_truncated_text_always_fits_and_keeps_the_suffix(text, suffix, max_segments):
    result = truncate_to_segments(text, max_segments, keep_suffix=suffix)
    assert count_segments(result).count <= max_segments
    assert result.endswith(suffix)
