"""The agencies of the plan: one set of codes used everywhere (API paths, events, routing rules)."""

from __future__ import annotations

from enum import StrEnum


class Agency(StrEnum):
    civil_affairs = "civil_affairs"
    cac = "cac"
    education = "education"
    police = "police"
    justice = "justice"
    finance = "finance"
    hrss = "hrss"
    health = "health"
    emergency = "emergency"
    court = "court"
    procuratorate = "procuratorate"
    wcwc = "wcwc"
    youth_league = "youth_league"
    womens_federation = "womens_federation"
    dpf = "dpf"
    township = "township"
    village = "village"
    charity = "charity"  # organisations outside government (charities, social organisations, volunteer teams)


AGENCY_NAMES: dict[Agency, tuple[str, str]] = {
    Agency.civil_affairs: ("市民政局", "Civil Affairs Bureau"),
    Agency.cac: ("市网信办", "Cyberspace Affairs Office"),
    Agency.education: ("市教育局", "Education Bureau"),
    Agency.police: ("市公安局", "Public Security Bureau"),
    Agency.justice: ("市司法局", "Justice Bureau"),
    Agency.finance: ("市财政局", "Finance Bureau"),
    Agency.hrss: ("市人力资源和社会保障局", "Human Resources and Social Security Bureau"),
    Agency.health: ("市卫生健康局", "Health Bureau"),
    Agency.emergency: ("市应急管理局", "Emergency Management Bureau"),
    Agency.court: ("市人民法院", "People's Court"),
    Agency.procuratorate: ("市人民检察院", "People's Procuratorate"),
    Agency.wcwc: ("妇女儿童工作委员会办公室", "Women and Children Working Committee Office"),
    Agency.youth_league: ("共青团", "Communist Youth League"),
    Agency.womens_federation: ("妇女联合会", "Women's Federation"),
    Agency.dpf: ("残疾人联合会", "Disabled Persons' Federation"),
    Agency.township: ("乡镇人民政府 / 街道办事处", "Township government / sub-district office"),
    Agency.village: ("村(社区)", "Village / community"),
    Agency.charity: ("社会组织 / 慈善组织", "Charity or social organisation"),
}

LEAD_AGENCY = Agency.civil_affairs
SUPERVISING_AGENCIES = frozenset({Agency.civil_affairs, Agency.wcwc})
# Organisations outside government: never see a case or a child through the case policy; they see what a
# relief match lets them see (services/referral/needs.py), one organisation at a time.
OUTSIDE_GOVERNMENT = frozenset({Agency.charity})
