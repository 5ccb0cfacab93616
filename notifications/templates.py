"""The notice texts, in zh-CN with an English fallback, rendered from a mapping of case data.

Templates use `string.Template` placeholders (`$case_no`), which only substitute names: no
attribute access, indexing or evaluation, whatever the data holds. A missing or empty value
renders as "—" rather than failing: a notice with a gap beats no notice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Any

from .sms_segments import truncate_to_segments

DISPATCH = "dispatch"  # 派遣 to the grid inspector
SIGN_FOR_REMINDER = "sign_for_reminder"  # 签收提醒
ESCALATION = "escalation"  # overdue, escalated to a supervisor
STAGE_REMINDER = "stage_reminder"  # 待办提醒: review or dispatch nearing its limit
URGE = "urge"  # 督办
CASE_CLOSED = "case_closed"  # 结案回复 to the citizen who reported
WARNING = "warning"  # 分级预警 I–IV with an acknowledgement link
KINDS = (DISPATCH, SIGN_FOR_REMINDER, STAGE_REMINDER, ESCALATION, URGE, CASE_CLOSED, WARNING)

FALLBACK_LOCALE = "en"
MISSING = "—"


@dataclass(frozen=True)
class _Text:
    title: str
    body: str


_TEMPLATES: dict[str, dict[str, _Text]] = {
    DISPATCH: {
        "zh-CN": _Text(
            "【案件派遣】$case_no",
            "您有新的案件待处置：$case_no，$category，地点：$address。请于$due前签收并处置。",
        ),
        "en": _Text(
            "Case dispatched: $case_no",
            "New case $case_no ($category) at $address. Sign for it and act by $due.",
        ),
    },
    SIGN_FOR_REMINDER: {
        "zh-CN": _Text(
            "【签收提醒】$case_no",
            "案件$case_no（$category，$address）已派遣给您，尚未签收，请于$due前签收。",
        ),
        "en": _Text(
            "Please sign for $case_no",
            "Case $case_no ($category, $address) awaits your sign-for; deadline $due.",
        ),
    },
    STAGE_REMINDER: {
        "zh-CN": _Text(
            "【待办提醒】$case_no",
            "案件$case_no（$category，$address）待$stage，请于$due前完成。",
        ),
        "en": _Text(
            "Due soon: $case_no",
            "Case $case_no ($category, $address) awaits $stage; deadline $due.",
        ),
    },
    ESCALATION: {
        "zh-CN": _Text(
            "【超时升级】$case_no",
            "案件$case_no（$category，$address）超时未处置，原责任人$assignee，已升级至您，请督促办理。",
        ),
        "en": _Text(
            "Escalated: $case_no",
            "Case $case_no ($category, $address) is overdue with $assignee and now escalated to you.",
        ),
    },
    URGE: {
        "zh-CN": _Text(
            "【督办】$case_no",
            "$urged_by督办案件$case_no：$comment。请于$due前办结。",
        ),
        "en": _Text(
            "Urged: $case_no",
            "$urged_by urges case $case_no: $comment. Finish it by $due.",
        ),
    },
    CASE_CLOSED: {
        "zh-CN": _Text(
            "您反映的问题已办结",
            "您反映的问题（$case_no，$address）已处理完毕：$result。感谢您的参与！",
        ),
        "en": _Text(
            "Your report is resolved",
            "Your report $case_no at $address has been resolved: $result. Thank you.",
        ),
    },
    WARNING: {
        "zh-CN": _Text(
            "【$level_label预警】$station",
            "$station $pollutant 浓度 $value$unit，超过限值 $limit$unit（$observed_at）。请立即核实并确认。",
        ),
        "en": _Text(
            "$level_label warning: $station",
            "$station: $pollutant at $value$unit exceeds the limit of $limit$unit ($observed_at). "
            "Check and acknowledge now.",
        ),
    },
}

# Ⅰ (most severe, red) … Ⅳ (blue), as in the national graded warning scheme
_LEVELS = {1: ("Ⅰ级", "红色", "Level I", "red"), 2: ("Ⅱ级", "橙色", "Level II", "orange"),
           3: ("Ⅲ级", "黄色", "Level III", "yellow"), 4: ("Ⅳ级", "蓝色", "Level IV", "blue")}
_LEVEL_NAMES = {"I": 1, "II": 2, "III": 3, "IV": 4, "Ⅰ": 1, "Ⅱ": 2, "Ⅲ": 3, "Ⅳ": 4}


@dataclass(frozen=True)
class Notice:
    title: str
    text: str
    url: str | None  # the case link, or the acknowledgement link of a warning


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return MISSING


def _as_text(value: Any) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def warning_level(level: Any) -> int:
    """1–4 from 1, "2", "III" or "Ⅳ"; ValueError otherwise."""
    text = str(level).strip().upper().removesuffix("级").removeprefix("LEVEL").strip()
    number = _LEVEL_NAMES.get(text) or (int(text) if text.isdigit() else None)
    if number not in _LEVELS:
        raise ValueError(f"warning level must be I–IV, not {level!r}")
    return number


def _pick(kind: str, locale: str) -> tuple[str, _Text]:
    if kind not in _TEMPLATES:
        raise ValueError(f"unknown notice kind {kind!r}")
    texts = _TEMPLATES[kind]
    if locale in texts:
        return locale, texts[locale]
    language = locale.split("-")[0].lower()
    for candidate, text in texts.items():
        if candidate.split("-")[0].lower() == language:
            return candidate, text
    return FALLBACK_LOCALE, texts[FALLBACK_LOCALE]


def render(kind: str, data: Mapping[str, Any], locale: str = "zh-CN") -> Notice:
    """The notice of `kind` for the case `data` in `locale` (English when there is no such text)."""
    chosen, text = _pick(kind, locale)
    values = _Values({key: _as_text(value) for key, value in data.items()})
    url = data.get("url") or None
    if kind == WARNING:
        zh_label, zh_colour, en_label, en_colour = _LEVELS[warning_level(data.get("level"))]
        values["level_label"] = f"{zh_label}（{zh_colour}）" if chosen.startswith("zh") else f"{en_label} ({en_colour})"
        url = data.get("ack_url") or url
    return Notice(Template(text.title).substitute(values), Template(text.body).substitute(values), url)


def render_sms(kind: str, data: Mapping[str, Any], locale: str = "zh-CN", *, max_segments: int = 3) -> str:
    """The notice as one SMS body of at most `max_segments` segments; the link, if any, is kept
    whole at the end and the text before it is cut."""
    notice = render(kind, data, locale)
    suffix = f" {notice.url}" if notice.url else ""
    return truncate_to_segments(notice.text, max_segments, keep_suffix=suffix)
