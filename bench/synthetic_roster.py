"""A synthetic survey roster (摸底排查) of children, with duplicates seeded in and the ground truth beside them.

    from bench.synthetic_roster import generate_roster, write_csv
    write_csv(path, generate_roster(100_000))

Everything is made up: surnames drawn from Faker's zh_CN surname table with its weights, given names composed of
characters from Faker's zh_CN given names and of characters common in names of children born since 2006, townships
of Yueqing with invented villages, identity-card numbers of the right shape (GB 11643: area, birth date,
sequence with the sex in its parity, check digit), shown on most rows, missing on some.

Ground truth: rows with the same ``person_key`` are the same child. A duplicate repeats an earlier child with one
or more of: a homophone character in the given name, a dropped given-name character, a traditional form, the birth
date's day and month swapped, the identity-card number missing, another village of the same township; never an
identical copy. ``variants`` names what was changed. Twins (same surname, birth date and household, a given name
differing by a character of another sound) are different children: ``twin_of`` names the other one.

Deterministic for a seed; a generator that holds only a bounded window of recent rows, whatever ``n``.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from pathlib import Path

from faker.providers.person.zh_CN import Provider as ChineseNames
from pypinyin import lazy_pinyin

SURVEY_DATE = date(2024, 6, 30)  # the plan's deadline for the full survey
FATHER_OR_MOTHER_STATUSES = ("at_home", "away_for_work", "deceased", "missing")
CAREGIVER_RELATIONS = ("grandparent", "other_relative", "other")
VARIANTS = (
    "name_homophone", "name_char_dropped", "name_traditional", "birth_date_day_month_swapped", "id_missing",
    "other_village",
)
TOWNSHIPS = (
    "乐成街道", "城南街道", "盐盆街道", "翁垟街道", "白石街道", "石帆街道", "天成街道", "柳市镇", "北白象镇", "虹桥镇",
    "淡溪镇", "清江镇", "芙蓉镇", "大荆镇", "仙溪镇", "雁荡镇", "湖雾镇", "南塘镇", "南岳镇", "蒲岐镇", "磐石镇",
)
VILLAGES_PER_TOWNSHIP = 40
_VILLAGE_HEADS = "东西南北上下前后新大小高白黄石沙岭溪塘山长沿湖桥江田"
_VILLAGE_TAILS = "头岙坑垟湾桥洋岩浦屿门田底埠岸庄山塘河园"
_MODERN_FEMALE = "梓涵欣怡萱诗琪语嫣可馨雨彤佳悦思雯婧妍晗若溪依诺一心子墨芷瑶梦语蕾晓筱宁凝柠甜茜希沐玥婉清芸瑾蕊"
_MODERN_MALE = "浩宇轩子睿博泽俊皓铭辰晨逸航宸然昊天佑煜哲瑞锐杰捷骏峻豪嘉家乐伟玮炜文斌宏鸿毅彬承诚思远亦凡一鸣"
_TRADITIONAL = dict(zip(
    "陈刘张杨黄吴赵孙马郑罗谢许邓冯韩叶钟苏卢蒋吕贾陆钱汤万龙严顾萧庄华伟军涛刚辉鹏飞欢阳国东云洁兰凤艳荣莹颖晓丽红静"
    "轩泽杰铭鸣诗语锐玮炜乐亿宁瑶梦宝贝凯岚强帅坚义丰进远达胜伦纯润诚颜鸿骏",
    "陳劉張楊黃吳趙孫馬鄭羅謝許鄧馮韓葉鍾蘇盧蔣呂賈陸錢湯萬龍嚴顧蕭莊華偉軍濤剛輝鵬飛歡陽國東雲潔蘭鳳艷榮瑩穎曉麗紅靜"
    "軒澤傑銘鳴詩語銳瑋煒樂億寧瑤夢寶貝凱嵐強帥堅義豐進遠達勝倫純潤誠顏鴻駿",
    strict=True,
))
_AREA_CODES = ("330382",) * 19 + ("330302", "330381", "330324", "330329")  # 乐清 mostly; some born elsewhere
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_WINDOW = 4000  # recent children a duplicate may repeat
_TWIN_RATE = 0.012


@dataclass(frozen=True, slots=True)
class RosterRow:
    name: str
    sex: str  # contracts.vocabulary.Sex value
    birth_date: date
    id_card_number: str | None
    township: str
    village: str
    father_status: str  # one of FATHER_OR_MOTHER_STATUSES
    father_away_since: date | None
    father_works_outside_county: bool | None
    mother_status: str
    mother_away_since: date | None
    mother_works_outside_county: bool | None
    caregiver_relation: str | None  # who cares for the child when neither parent is at home
    school: str | None
    disability: bool
    # ground truth
    person_key: str  # rows with the same key are the same child
    variants: tuple[str, ...] = ()  # what a duplicate changed (VARIANTS); empty on a child's first row
    twin_of: str | None = None  # the person_key of a twin


TRUTH_COLUMNS = ("person_key", "variants", "twin_of")
COLUMNS = tuple(f.name for f in fields(RosterRow))


def id_check_digit(body: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def is_valid_id_card_number(value: str) -> bool:
    return len(value) == 18 and value[:17].isdigit() and id_check_digit(value[:17]) == value[17].upper()


@dataclass
class _Person:
    row: RosterRow
    true_id: str


class _Generator:
    def __init__(self, seed: int, as_of: date) -> None:
        self.rnd = random.Random(seed)
        self.as_of = as_of
        self.surnames = list(ChineseNames.last_names)
        self.surname_weights = list(itertools.accumulate(ChineseNames.last_names.values()))
        female_given = "".join(ChineseNames.first_names_female) + _MODERN_FEMALE * 2
        male_given = "".join(ChineseNames.first_names_male) + _MODERN_MALE * 2
        self.given = {"female": list(female_given), "male": list(male_given)}
        self.sound = {c: lazy_pinyin(c)[0] for c in sorted(set(female_given) | set(male_given))}
        self.homophones = _homophones(self.sound)
        self.villages = {t: self._villages(t) for t in TOWNSHIPS}
        self.used_ids: set[str] = set()
        self.persons = 0

    def _villages(self, township: str) -> list[str]:
        suffix = "社区" if township.endswith("街道") else "村"
        names: list[str] = []
        while len(names) < VILLAGES_PER_TOWNSHIP:
            name = self.rnd.choice(_VILLAGE_HEADS) + self.rnd.choice(_VILLAGE_TAILS) + suffix
            if name not in names:
                names.append(name)
        return names

    def person_key(self) -> str:
        self.persons += 1
        return f"p{self.persons:07d}"

    def given_name(self, sex: str) -> str:
        pool = self.given[sex]
        length = 1 if self.rnd.random() < 0.22 else 2
        return "".join(self.rnd.choice(pool) for _ in range(length))

    def id_number(self, area: str, born: date, sex: str) -> str:
        while True:
            sequence = self.rnd.randrange(0, 499) * 2 + (1 if sex == "male" else 2)
            body = f"{area}{born:%Y%m%d}{sequence:03d}"
            number = body + id_check_digit(body)
            if number not in self.used_ids:
                self.used_ids.add(number)
                return number

    def child(self) -> _Person:
        rnd = self.rnd
        sex = rnd.choice(("female", "male"))
        born = self.as_of - timedelta(days=rnd.randrange(30, 18 * 365))
        surname = rnd.choices(self.surnames, cum_weights=self.surname_weights)[0]
        township = rnd.choice(TOWNSHIPS)
        true_id = self.id_number(rnd.choice(_AREA_CODES), born, sex)
        father, father_since, father_outside = self.parent(0.45)
        mother_away = 0.6 if father == "away_for_work" else 0.12
        mother, mother_since, mother_outside = self.parent(mother_away)
        nobody_home = father != "at_home" and mother != "at_home"
        row = RosterRow(
            name=surname + self.given_name(sex), sex=sex, birth_date=born,
            id_card_number=true_id if rnd.random() < 0.9 else None,
            township=township, village=rnd.choice(self.villages[township]),
            father_status=father, father_away_since=father_since, father_works_outside_county=father_outside,
            mother_status=mother, mother_away_since=mother_since, mother_works_outside_county=mother_outside,
            caregiver_relation=rnd.choices(CAREGIVER_RELATIONS, (75, 20, 5))[0] if nobody_home else None,
            school=self.school(township, born), disability=rnd.random() < 0.02, person_key=self.person_key(),
        )
        return _Person(row, true_id)

    def parent(self, away_rate: float) -> tuple[str, date | None, bool | None]:
        rnd = self.rnd
        draw = rnd.random()
        if draw < away_rate:
            since = self.as_of - timedelta(days=rnd.choice((rnd.randrange(1, 2500), rnd.randrange(80, 100))))
            return "away_for_work", since, rnd.random() < 0.8
        if draw < away_rate + 0.03:
            return "deceased", None, None
        if draw < away_rate + 0.05:
            return "missing", None, None
        return "at_home", None, None

    def school(self, township: str, born: date) -> str | None:
        age = (self.as_of - born).days // 365
        place = township.removesuffix("街道").removesuffix("镇")
        if age < 3:
            return None
        if age < 6:
            return f"乐清市{place}幼儿园"
        if age < 12:
            return f"乐清市{place}{self.rnd.choice(('第一', '第二', '中心'))}小学"
        if age < 15:
            return f"乐清市{place}中学"
        return self.rnd.choice(("乐清市第二中学", "乐清市职业中等专业学校", None))

    def twin(self, of: _Person) -> _Person:
        rnd = self.rnd
        row = of.row
        sex = rnd.choice(("female", "male"))
        surname, given = row.name[0], row.name[1:]
        if len(given) == 2 and rnd.random() < 0.7:  # 晓雨 and 晓雪: one character of another sound
            sound = self.sound.get(given[1]) or lazy_pinyin(given[1])[0]
            other = rnd.choice([c for c in self.given[sex] if self.sound[c] != sound and c != given[0]])
            name = surname + given[0] + other
        else:
            name = surname + self.given_name(sex)
        true_id = self.id_number(of.true_id[:6], row.birth_date, sex)
        twin = replace(
            row, name=name, sex=sex, id_card_number=true_id if rnd.random() < 0.9 else None,
            person_key=self.person_key(), twin_of=row.person_key,
        )
        return _Person(twin, true_id)

    def duplicate(self, of: _Person) -> RosterRow:
        rnd = self.rnd
        row = of.row
        changes: dict[str, object] = {}
        variants: list[str] = []
        if rnd.random() < 0.65:
            name, variant = self.name_variant(row.name)
            if variant:
                changes["name"] = name
                variants.append(variant)
        swapped = _swap(row.birth_date)
        if swapped is not None and rnd.random() < 0.3:
            changes["birth_date"] = swapped
            variants.append("birth_date_day_month_swapped")
        if rnd.random() < 0.35:
            village = rnd.choice([v for v in self.villages[row.township] if v != row.village])
            changes["village"] = village
            variants.append("other_village")
        new_id = of.true_id if rnd.random() < 0.4 else None
        changes["id_card_number"] = new_id
        if new_id is None:
            variants.append("id_missing")
        dropped_id = new_id is None and row.id_card_number is not None
        if not dropped_id and not [v for v in variants if v != "id_missing"]:
            name, variant = self.name_variant(row.name)  # nothing seeded so far: vary the name or the village
            if variant:
                changes["name"] = name
            else:
                changes["village"] = rnd.choice([v for v in self.villages[row.township] if v != row.village])
                variant = "other_village"
            variants.append(variant)
        return replace(row, **changes, variants=tuple(sorted(variants)))  # type: ignore[arg-type]

    def name_variant(self, name: str) -> tuple[str, str]:
        """A variant of the name and what it is; the name itself and "" when none can be made."""
        rnd = self.rnd
        surname, given = name[0], name[1:]
        options = []
        homophone_at = [i for i, c in enumerate(given) if self.homophones.get(c)]
        if homophone_at:
            options += ["name_homophone"] * 2
        if len(given) >= 2:
            options.append("name_char_dropped")
        if any(c in _TRADITIONAL for c in name):
            options.append("name_traditional")
        if not options:
            return name, ""
        choice = rnd.choice(options)
        if choice == "name_homophone":
            i = rnd.choice(homophone_at)
            return surname + given[:i] + rnd.choice(self.homophones[given[i]]) + given[i + 1 :], choice
        if choice == "name_char_dropped":
            i = rnd.randrange(len(given))
            return surname + given[:i] + given[i + 1 :], choice
        at = [i for i, c in enumerate(name) if c in _TRADITIONAL]
        chars = list(name)
        for i in rnd.sample(at, k=rnd.randint(1, len(at))):
            chars[i] = _TRADITIONAL[chars[i]]
        return "".join(chars), choice


def _homophones(sound: dict[str, str]) -> dict[str, list[str]]:
    by_sound: dict[str, list[str]] = {}
    for c, syllable in sound.items():
        by_sound.setdefault(syllable, []).append(c)
    return {c: [o for o in group if o != c] for group in by_sound.values() for c in group if len(group) > 1}


def _swap(born: date) -> date | None:
    if born.day > 12 or born.day == born.month:
        return None
    try:
        return born.replace(month=born.day, day=born.month)
    except ValueError:
        return None


def generate_roster(
    n: int, duplicate_rate: float = 0.05, seed: int = 7, *, as_of: date = SURVEY_DATE
) -> Iterator[RosterRow]:
    """``n`` rows; about ``duplicate_rate`` of them repeat a child of an earlier row (within a recent window)."""
    if not 0.0 <= duplicate_rate < 1.0:
        raise ValueError("duplicate_rate must be in [0, 1)")
    gen = _Generator(seed, as_of)
    recent: deque[_Person] = deque(maxlen=_WINDOW)
    pending_twin: _Person | None = None
    for _ in range(n):
        if pending_twin is not None:
            person, pending_twin = pending_twin, None
            recent.append(person)
            yield person.row
        elif recent and gen.rnd.random() < duplicate_rate:
            yield gen.duplicate(gen.rnd.choice(recent))
        else:
            person = gen.child()
            recent.append(person)
            if gen.rnd.random() < _TWIN_RATE:
                pending_twin = gen.twin(person)
            yield person.row


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return ";".join(value)
    return str(value)


def write_csv(path: str | Path, rows: Iterable[RosterRow], *, include_truth: bool = True) -> int:
    """Write the rows as UTF-8 CSV with a header (COLUMNS; without TRUTH_COLUMNS if asked); returns the count.

    Dates are ISO 8601, booleans ``true``/``false``, missing values empty."""
    columns: Sequence[str] = COLUMNS if include_truth else tuple(c for c in COLUMNS if c not in TRUTH_COLUMNS)
    count = 0
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(getattr(row, c)) for c in columns])
            count += 1
    return count
