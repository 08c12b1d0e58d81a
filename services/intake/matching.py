"""Probable duplicates of a child (one child, one file): pure scoring and an in-memory matcher.

A pair of records is compared on the identity-card number first: the same number (18 characters, compared
upper-cased) is a certain match; two different numbers are a certain non-match, whatever else agrees. Without
a number on both sides the score is the product of four factors, each 1.0 when the field agrees exactly and
smaller the less sure the difference leaves us that it is the same child:

- name: the same characters (traditional forms folded to simplified); the same pinyin (homophones, variant and
  traditional characters, heteronyms); the same pinyin up to the confusions common in the area's Mandarin (zh/z,
  ch/c, sh/s, n/l, -ng/-n); one given-name character missing; anything else at most ``NAME_OTHER_MAX``, scaled by
  a character and pinyin similarity (rapidfuzz), so a twin (same surname, date and village) stays below;
- birth date: equal; day and month swapped; one day apart; one digit of month or day different in the same year.
  Any other difference (another year, for instance) is no match at all;
- sex: the same, or a heavy penalty;
- place: the same village, the same township, or elsewhere in the county.

``PROBABLE_AT`` is calibrated on the synthetic roster (``bench/child_matching.py``). Blocking keys make lookup
touch only a handful of records: a pair the scorer accepts at or above ``BLOCKING_COMPLETE_AT`` always shares a
key (see ``lookup_keys``). Nothing here logs; records hold personal data and stay in memory.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple
from uuid import UUID

from pypinyin import Style, pinyin
from rapidfuzz import fuzz

PROBABLE_AT = 0.8
BLOCKING_COMPLETE_AT = 0.78  # below this, a pair in different townships or with a one-digit date slip may be missed

NAME_PINYIN = 0.96
NAME_PINYIN_FUZZY = 0.92
NAME_GIVEN_CHAR_MISSING = 0.88
NAME_OTHER_MAX = 0.6
DATE_SWAPPED = 0.95
DATE_ONE_DAY = 0.92
DATE_ONE_DIGIT = 0.88
PLACE_SAME_TOWNSHIP = 0.93
PLACE_ELSEWHERE = 0.82
SEX_DIFFERENT = 0.7

REASONS = frozenset({
    "id_card",
    "name_exact", "name_pinyin", "name_pinyin_fuzzy", "name_given_char_missing",
    "birth_date", "birth_date_day_month_swapped", "birth_date_one_day", "birth_date_one_digit",
    "same_sex", "same_village", "same_township",
})

# Traditional (and a few variant) forms of characters common in names, folded to the simplified form.
_TRADITIONAL = "陳劉張楊黃吳趙孫馬鄭羅謝許鄧馮韓葉鍾蘇盧蔣呂賈陸閻錢湯萬龍嚴顧蕭莊華偉軍濤剛輝鵬飛歡陽國東雲潔蘭鳳艷豔榮瑩穎曉麗紅靜軒澤傑銘鳴詩語銳韜瑋煒靚樂億寧瑤夢寶貝長書凱嵐強帥堅義禮豐進遠達勝倫純綺潤誠謙顏晉峯淸"  # noqa: E501
_SIMPLIFIED = "陈刘张杨黄吴赵孙马郑罗谢许邓冯韩叶钟苏卢蒋吕贾陆阎钱汤万龙严顾萧庄华伟军涛刚辉鹏飞欢阳国东云洁兰凤艳艳荣莹颖晓丽红静轩泽杰铭鸣诗语锐韬玮炜靓乐亿宁瑶梦宝贝长书凯岚强帅坚义礼丰进远达胜伦纯绮润诚谦颜晋峰清"  # noqa: E501
_FOLD = str.maketrans(_TRADITIONAL, _SIMPLIFIED)
_NAME_NOISE = str.maketrans("", "", " \t\u3000·•．.")
_ONE_DAY = timedelta(days=1)
_PLACE_SUFFIXES = ("街道办事处", "村民委员会", "居民委员会", "村委会", "居委会", "街道", "社区", "镇", "乡", "村")


@dataclass(frozen=True)
class PersonRecord:
    child_id: UUID
    name: str
    sex: str  # contracts.vocabulary.Sex value
    birth_date: date
    id_card_number: str | None
    township: str
    village: str


@dataclass(frozen=True)
class Match:
    child_id: UUID  # the existing child it probably duplicates
    score: float  # 0..1
    exact: bool  # same identity-card number
    reasons: tuple[str, ...]  # codes, see REASONS


class Features(NamedTuple):
    """A record prepared for comparison: folded name, pinyin readings per character, normalised keys."""

    record: PersonRecord
    chars: str
    readings: tuple[frozenset[str], ...]
    fuzzy: tuple[frozenset[str], ...]
    name_key: str
    sex: str
    township: str
    village: str
    id_key: str | None
    born: str  # ISO birth date


class BlockingKeys(NamedTuple):
    """What a record is filed under (``stored``) or looked up by (``lookup``): the identity-card number, and three
    keys, each a necessary condition of one region of the scores the matcher accepts."""

    id_card: tuple[str, ...]
    date_name: tuple[str, ...]  # sex, exact birth date, fuzzy pinyin: a namesake anywhere in the county
    place_date: tuple[str, ...]  # sex, township, birth date (looked up also swapped and one day either side)
    place_name: tuple[str, ...]  # sex, township, fuzzy pinyin: a one-digit slip in the birth date


def normalise_id_card(value: str | None) -> str | None:
    """The number as compared: without spaces, upper-cased; anything but 18 characters counts as no number."""
    if value is None:
        return None
    cleaned = "".join(value.split()).upper()
    return cleaned if len(cleaned) == 18 else None


@functools.lru_cache(maxsize=8192)
def normalise_place(value: str) -> str:
    cleaned = "".join(value.split())
    for suffix in _PLACE_SUFFIXES:
        if cleaned.endswith(suffix) and len(cleaned) > len(suffix):
            return cleaned[: -len(suffix)]
    return cleaned


@functools.lru_cache(maxsize=16384)
def _char_readings(char: str) -> tuple[frozenset[str], frozenset[str], str]:
    """Every tone-less reading of one character, the same after the local confusions, and the fuzzy default."""
    readings = pinyin(char, style=Style.NORMAL, heteronym=True, errors="default")[0]
    plain = frozenset(r.lower() for r in readings) or frozenset({char})
    default = (readings[0] if readings else char).lower()
    return plain, frozenset(_fuzzy_syllable(r) for r in plain), _fuzzy_syllable(default)


def _fuzzy_syllable(syllable: str) -> str:
    for retroflex, flat in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(retroflex):
            syllable = flat + syllable[2:]
            break
    if syllable.startswith("n") and not syllable.startswith("ng"):
        syllable = "l" + syllable[1:]
    if syllable.endswith(("ing", "eng")):
        syllable = syllable[:-1]
    return syllable


def prepare(record: PersonRecord) -> Features:
    return Features(
        record,
        *_name_features(record.name),
        record.sex.strip().lower(),
        normalise_place(record.township),
        normalise_place(record.village),
        normalise_id_card(record.id_card_number),
        record.birth_date.isoformat(),
    )


@functools.lru_cache(maxsize=65536)
def _name_features(name: str) -> tuple[str, tuple[frozenset[str], ...], tuple[frozenset[str], ...], str]:
    chars = name.translate(_NAME_NOISE).translate(_FOLD)
    per_char = [_char_readings(c) for c in chars]
    return (
        chars,
        tuple(p[0] for p in per_char),
        tuple(p[1] for p in per_char),
        " ".join(p[2] for p in per_char),
    )


def stored_keys(f: Features) -> BlockingKeys:
    return BlockingKeys(
        id_card=(f.id_key,) if f.id_key else (),
        date_name=(f"{f.sex}|{f.born}|{f.name_key}",),
        place_date=(f"{f.sex}|{f.township}|{f.born}",),
        place_name=(f"{f.sex}|{f.township}|{f.name_key}",),
    )


def lookup_keys(f: Features) -> BlockingKeys:
    """Keys to look up so that every record the scorer would accept (at ``BLOCKING_COMPLETE_AT`` or more) is found:

    - another township (factor 0.82) passes only with the same birth date and a name of the same sound:
      ``date_name``;
    - the same township with the date equal, swapped or one day off: ``place_date`` for each of those dates;
    - the same township with a one-digit slip (0.88) passes only with a name of the same (fuzzy) pinyin:
      ``place_name``. A different sex (0.7) never passes, so every key carries the sex.
    """
    stored = stored_keys(f)
    place = f"{f.sex}|{f.township}|"
    return BlockingKeys(
        id_card=stored.id_card,
        date_name=stored.date_name,
        place_date=tuple(place + d.isoformat() for d in near_dates(f.record.birth_date)),
        place_name=stored.place_name,
    )


def near_dates(born: date) -> tuple[date, ...]:
    """The birth date, the same with day and month swapped (when that is a date), and one day either side."""
    swapped = _swapped(born)
    if swapped is None:
        return born, born - _ONE_DAY, born + _ONE_DAY
    return born, swapped, born - _ONE_DAY, born + _ONE_DAY


def _swapped(born: date) -> date | None:
    if born.day == born.month or born.day > 12:
        return None
    try:
        return born.replace(month=born.day, day=born.month)
    except ValueError:
        return None


def score(a: PersonRecord, b: PersonRecord) -> Match | None:
    """How probably ``a`` is the same child as ``b``, as a match against ``b``; None when certainly not (the same
    record, different identity-card numbers, birth dates too far apart)."""
    return compare(prepare(a), prepare(b))


def compare(a: Features, b: Features, floor: float = 0.0) -> Match | None:
    """``score`` on prepared records; None as well when the score cannot reach ``floor``."""
    if a.record.child_id == b.record.child_id:
        return None
    if a.id_key is not None and b.id_key is not None:
        return Match(b.record.child_id, 1.0, True, ("id_card",)) if a.id_key == b.id_key else None
    dated = _date_level(a.record.birth_date, b.record.birth_date)
    if dated is None:
        return None
    date_factor, date_reason = dated
    reasons = [date_reason]
    total = date_factor
    if a.sex == b.sex:
        reasons.append("same_sex")
    else:
        total *= SEX_DIFFERENT
    if a.township == b.township:
        if a.village == b.village:
            reasons.append("same_village")
        else:
            total *= PLACE_SAME_TOWNSHIP
            reasons.append("same_township")
    else:
        total *= PLACE_ELSEWHERE
    if round(total, 4) < floor:  # the name can only lower it
        return None
    name_factor, name_reason = _name_level(a, b)
    total = round(total * name_factor, 4)
    if total < floor:
        return None
    if name_reason is not None:
        reasons.insert(0, name_reason)
    return Match(b.record.child_id, total, False, tuple(reasons))


def _date_level(a: date, b: date) -> tuple[float, str] | None:
    if a == b:
        return 1.0, "birth_date"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return DATE_SWAPPED, "birth_date_day_month_swapped"
    if abs((a - b).days) == 1:
        return DATE_ONE_DAY, "birth_date_one_day"
    if a.year == b.year and sum(x != y for x, y in zip(f"{a:%m%d}", f"{b:%m%d}", strict=True)) == 1:
        return DATE_ONE_DIGIT, "birth_date_one_digit"
    return None


def _same(xs: Iterable[frozenset[str]], ys: Iterable[frozenset[str]]) -> bool:
    return all(x & y for x, y in zip(xs, ys, strict=True))


def _name_level(a: Features, b: Features) -> tuple[float, str | None]:
    if not a.chars or not b.chars:
        return 0.0, None
    if a.chars == b.chars:
        return 1.0, "name_exact"
    if len(a.chars) == len(b.chars):
        if _same(a.readings, b.readings):
            return NAME_PINYIN, "name_pinyin"
        if _same(a.fuzzy, b.fuzzy):
            return NAME_PINYIN_FUZZY, "name_pinyin_fuzzy"
    elif abs(len(a.chars) - len(b.chars)) == 1 and min(len(a.chars), len(b.chars)) >= 2:
        longer, shorter = (a.fuzzy, b.fuzzy) if len(a.chars) > len(b.chars) else (b.fuzzy, a.fuzzy)
        if any(_same(longer[:i] + longer[i + 1 :], shorter) for i in range(1, len(longer))):  # surname kept
            return NAME_GIVEN_CHAR_MISSING, "name_given_char_missing"
    similarity = max(fuzz.ratio(a.chars, b.chars), fuzz.ratio(a.name_key, b.name_key)) / 100
    return NAME_OTHER_MAX * similarity, None


def checked_threshold(threshold: float) -> float:
    if not BLOCKING_COMPLETE_AT <= threshold <= 1.0:
        raise ValueError(f"threshold must be between {BLOCKING_COMPLETE_AT} and 1.0, the range blocking covers")
    return threshold


def best_first(matches: Iterable[Match], limit: int) -> list[Match]:
    ranked = sorted(matches, key=lambda m: (not m.exact, -m.score, str(m.child_id)))
    return ranked[:limit]


class DuplicateMatcher:
    """In memory: blocking keys -> candidate children, then scoring. Adding a child id again replaces its record."""

    def __init__(self, threshold: float = PROBABLE_AT) -> None:
        self.threshold = checked_threshold(threshold)
        self._features: dict[UUID, Features] = {}
        self._keys: dict[UUID, tuple[str, ...]] = {}
        self._index: dict[str, set[UUID]] = {}
        self._last: Features | None = None  # the record just queried, so that adding it next prepares it once

    def __len__(self) -> int:
        return len(self._features)

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._features

    def add(self, record: PersonRecord) -> None:
        last = self._last
        self.add_prepared(last if last is not None and last.record == record else prepare(record))

    def add_prepared(self, features: Features) -> None:
        child_id = features.record.child_id
        if child_id in self._features:
            self.remove(child_id)
        keys = _flat(stored_keys(features))
        self._features[child_id] = features
        self._keys[child_id] = keys
        for key in keys:
            self._index.setdefault(key, set()).add(child_id)

    def remove(self, child_id: UUID) -> None:
        if self._features.pop(child_id, None) is None:
            return
        for key in self._keys.pop(child_id):
            bucket = self._index.get(key)
            if bucket is not None:
                bucket.discard(child_id)
                if not bucket:
                    del self._index[key]

    def candidates(self, record: PersonRecord, limit: int = 5) -> list[Match]:
        """Probable duplicates of ``record`` among the children added, best first; never ``record`` itself."""
        self._last = prepare(record)
        return self.candidates_prepared(self._last, limit)

    def candidates_prepared(self, query: Features, limit: int = 5, keys: BlockingKeys | None = None) -> list[Match]:
        """``candidates`` of a prepared record (``keys``: its ``lookup_keys``, when already at hand)."""
        found: set[UUID] = set()
        for key in _flat(keys if keys is not None else lookup_keys(query)):
            bucket = self._index.get(key)
            if bucket:
                found |= bucket
        found.discard(query.record.child_id)
        matches = []
        for child_id in found:
            match = compare(query, self._features[child_id], floor=self.threshold)
            if match is not None and (match.exact or match.score >= self.threshold):
                matches.append(match)
        return best_first(matches, limit)


def _flat(keys: BlockingKeys) -> tuple[str, ...]:
    return (
        *(f"i|{k}" for k in keys.id_card),
        *(f"a|{k}" for k in keys.date_name),
        *(f"b|{k}" for k in keys.place_date),
        *(f"d|{k}" for k in keys.place_name),
    )
