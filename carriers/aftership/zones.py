"""Countries in AfterShip answers: ISO alpha-3 -> alpha-2. Pure: no I/O.

AfterShip writes countries as ISO 3166-1 alpha-3 (``country_iso3`` in the legacy and early
versioned API, ``country_region`` in later versions); the tracker stores alpha-2. Checkpoint
times are the carrier's local time, often with no offset; the zone of a checkpoint's place
(alpha-2 country, and for the US and Canada the state, which AfterShip may write as a code or
a full name) comes from :mod:`carriers.timezones`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_ISO3_ISO2_PAIRS = """
AFG AF ALA AX ALB AL DZA DZ ASM AS AND AD AGO AO AIA AI ATA AQ ATG AG ARG AR ARM AM ABW AW
AUS AU AUT AT AZE AZ BHS BS BHR BH BGD BD BRB BB BLR BY BEL BE BLZ BZ BEN BJ BMU BM BTN BT
BOL BO BES BQ BIH BA BWA BW BVT BV BRA BR IOT IO BRN BN BGR BG BFA BF BDI BI CPV CV KHM KH
CMR CM CAN CA CYM KY CAF CF TCD TD CHL CL CHN CN CXR CX CCK CC COL CO COM KM COG CG COD CD
COK CK CRI CR CIV CI HRV HR CUB CU CUW CW CYP CY CZE CZ DNK DK DJI DJ DMA DM DOM DO ECU EC
EGY EG SLV SV GNQ GQ ERI ER EST EE SWZ SZ ETH ET FLK FK FRO FO FJI FJ FIN FI FRA FR GUF GF
PYF PF ATF TF GAB GA GMB GM GEO GE DEU DE GHA GH GIB GI GRC GR GRL GL GRD GD GLP GP GUM GU
GTM GT GGY GG GIN GN GNB GW GUY GY HTI HT HMD HM VAT VA HND HN HKG HK HUN HU ISL IS IND IN
IDN ID IRN IR IRQ IQ IRL IE IMN IM ISR IL ITA IT JAM JM JPN JP JEY JE JOR JO KAZ KZ KEN KE
KIR KI PRK KP KOR KR KWT KW KGZ KG LAO LA LVA LV LBN LB LSO LS LBR LR LBY LY LIE LI LTU LT
LUX LU MAC MO MDG MG MWI MW MYS MY MDV MV MLI ML MLT MT MHL MH MTQ MQ MRT MR MUS MU MYT YT
MEX MX FSM FM MDA MD MCO MC MNG MN MNE ME MSR MS MAR MA MOZ MZ MMR MM NAM NA NRU NR NPL NP
NLD NL NCL NC NZL NZ NIC NI NER NE NGA NG NIU NU NFK NF MKD MK MNP MP NOR NO OMN OM PAK PK
PLW PW PSE PS PAN PA PNG PG PRY PY PER PE PHL PH PCN PN POL PL PRT PT PRI PR QAT QA REU RE
ROU RO RUS RU RWA RW BLM BL SHN SH KNA KN LCA LC MAF MF SPM PM VCT VC WSM WS SMR SM STP ST
SAU SA SEN SN SRB RS SYC SC SLE SL SGP SG SXM SX SVK SK SVN SI SLB SB SOM SO ZAF ZA SGS GS
SSD SS ESP ES LKA LK SDN SD SUR SR SJM SJ SWE SE CHE CH SYR SY TWN TW TJK TJ TZA TZ THA TH
TLS TL TGO TG TKL TK TON TO TTO TT TUN TN TUR TR TKM TM TCA TC TUV TV UGA UG UKR UA ARE AE
GBR GB USA US UMI UM URY UY UZB UZ VUT VU VEN VE VNM VN VGB VG VIR VI WLF WF ESH EH YEM YE
ZMB ZM ZWE ZW XKX XK
"""


def _pairs(text: str) -> dict[str, str]:
    words = text.split()
    return dict(zip(words[0::2], words[1::2], strict=True))


ISO3_TO_ISO2: Mapping[str, str] = MappingProxyType(_pairs(_ISO3_ISO2_PAIRS))
"""ISO 3166-1 alpha-3 -> alpha-2 (every officially assigned code, plus Kosovo's ``XKX``)."""

ISO2_TO_ISO3: Mapping[str, str] = MappingProxyType({v: k for k, v in ISO3_TO_ISO2.items()})


def country_iso2(value: object) -> str | None:
    """An alpha-2 code from AfterShip's alpha-3 (or an alpha-2 given as such), else None."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    if len(code) == 3:
        return ISO3_TO_ISO2.get(code)
    if len(code) == 2 and code in ISO2_TO_ISO3:
        return code
    return None
