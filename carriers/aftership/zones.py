"""Places in AfterShip answers: ISO alpha-3 countries -> alpha-2, and the time zone of a place.

AfterShip writes countries as ISO 3166-1 alpha-3 (``country_iso3`` in the legacy and early
versioned API, ``country_region`` in later versions); the tracker stores alpha-2. Checkpoint
times are the carrier's local time, often with no offset, so a zone is needed to read them:

* :data:`COUNTRY_ZONES` covers countries whose people live (almost) entirely in one zone;
  countries spread over several zones (US, CA, BR, RU, AU, MX, ID, ...) are absent.
* :data:`US_STATE_ZONES` covers the United States by state (two-letter code or full name). A
  state split between two zones gets the zone most of its people live in (Texas: Central).

Pure: no I/O. A place we have no zone for returns None, and the caller decides (the parser
then reads the time as UTC and says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

COUNTRY_ZONES: Mapping[str, str] = MappingProxyType(
    {
        "AE": "Asia/Dubai", "AR": "America/Argentina/Buenos_Aires", "AT": "Europe/Vienna",
        "BD": "Asia/Dhaka", "BE": "Europe/Brussels", "BG": "Europe/Sofia", "BY": "Europe/Minsk",
        "CH": "Europe/Zurich", "CN": "Asia/Shanghai", "CO": "America/Bogota",
        "CR": "America/Costa_Rica", "CY": "Asia/Nicosia", "CZ": "Europe/Prague",
        "DE": "Europe/Berlin", "DK": "Europe/Copenhagen", "EE": "Europe/Tallinn",
        "EG": "Africa/Cairo", "ES": "Europe/Madrid", "FI": "Europe/Helsinki", "FR": "Europe/Paris",
        "GB": "Europe/London", "GR": "Europe/Athens", "HK": "Asia/Hong_Kong",
        "HR": "Europe/Zagreb", "HU": "Europe/Budapest", "IE": "Europe/Dublin",
        "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata", "IS": "Atlantic/Reykjavik",
        "IT": "Europe/Rome", "JP": "Asia/Tokyo", "KR": "Asia/Seoul", "LT": "Europe/Vilnius",
        "LU": "Europe/Luxembourg", "LV": "Europe/Riga", "MA": "Africa/Casablanca",
        "MT": "Europe/Malta", "MY": "Asia/Kuala_Lumpur", "NG": "Africa/Lagos",
        "NL": "Europe/Amsterdam", "NO": "Europe/Oslo", "NZ": "Pacific/Auckland",
        "PH": "Asia/Manila", "PK": "Asia/Karachi", "PL": "Europe/Warsaw",
        "PR": "America/Puerto_Rico", "PT": "Europe/Lisbon", "RO": "Europe/Bucharest",
        "RS": "Europe/Belgrade", "SA": "Asia/Riyadh", "SE": "Europe/Stockholm",
        "SG": "Asia/Singapore",
        "SI": "Europe/Ljubljana", "SK": "Europe/Bratislava", "TH": "Asia/Bangkok",
        "TR": "Europe/Istanbul", "TW": "Asia/Taipei", "UA": "Europe/Kyiv",
        "VN": "Asia/Ho_Chi_Minh", "ZA": "Africa/Johannesburg",
    }
)  # fmt: skip
"""ISO alpha-2 -> IANA zone for single-zone countries (Spain and Portugal: the mainland)."""

_EAST, _CENTRAL, _MOUNTAIN, _PACIFIC = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
)  # fmt: skip

_US_STATES: tuple[tuple[str, str, str], ...] = (
    ("AL", "Alabama", _CENTRAL), ("AK", "Alaska", "America/Anchorage"),
    ("AZ", "Arizona", "America/Phoenix"), ("AR", "Arkansas", _CENTRAL),
    ("CA", "California", _PACIFIC), ("CO", "Colorado", _MOUNTAIN),
    ("CT", "Connecticut", _EAST), ("DE", "Delaware", _EAST),
    ("DC", "District of Columbia", _EAST), ("FL", "Florida", _EAST),
    ("GA", "Georgia", _EAST), ("HI", "Hawaii", "Pacific/Honolulu"),
    ("ID", "Idaho", "America/Boise"), ("IL", "Illinois", _CENTRAL),
    ("IN", "Indiana", "America/Indiana/Indianapolis"), ("IA", "Iowa", _CENTRAL),
    ("KS", "Kansas", _CENTRAL), ("KY", "Kentucky", _EAST), ("LA", "Louisiana", _CENTRAL),
    ("ME", "Maine", _EAST), ("MD", "Maryland", _EAST), ("MA", "Massachusetts", _EAST),
    ("MI", "Michigan", "America/Detroit"), ("MN", "Minnesota", _CENTRAL),
    ("MS", "Mississippi", _CENTRAL), ("MO", "Missouri", _CENTRAL),
    ("MT", "Montana", _MOUNTAIN), ("NE", "Nebraska", _CENTRAL), ("NV", "Nevada", _PACIFIC),
    ("NH", "New Hampshire", _EAST), ("NJ", "New Jersey", _EAST),
    ("NM", "New Mexico", _MOUNTAIN), ("NY", "New York", _EAST),
    ("NC", "North Carolina", _EAST), ("ND", "North Dakota", _CENTRAL), ("OH", "Ohio", _EAST),
    ("OK", "Oklahoma", _CENTRAL), ("OR", "Oregon", _PACIFIC), ("PA", "Pennsylvania", _EAST),
    ("RI", "Rhode Island", _EAST), ("SC", "South Carolina", _EAST),
    ("SD", "South Dakota", _CENTRAL), ("TN", "Tennessee", _CENTRAL), ("TX", "Texas", _CENTRAL),
    ("UT", "Utah", _MOUNTAIN), ("VT", "Vermont", _EAST), ("VA", "Virginia", _EAST),
    ("WA", "Washington", _PACIFIC), ("WV", "West Virginia", _EAST),
    ("WI", "Wisconsin", _CENTRAL), ("WY", "Wyoming", _MOUNTAIN),
    ("PR", "Puerto Rico", "America/Puerto_Rico"), ("GU", "Guam", "Pacific/Guam"),
    ("VI", "Virgin Islands", "America/St_Thomas"),
)  # fmt: skip

US_STATE_ZONES: Mapping[str, str] = MappingProxyType(
    {key.casefold(): zone for code, name, zone in _US_STATES for key in (code, name)}
)
"""US state code or name (case-folded) -> IANA zone (the majority zone of split states)."""


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


def zone_for(country: str | None, state: object = None) -> tzinfo | None:
    """The zone of a place: the US state's when the country is the US, else the country's."""
    if country == "US":
        name = US_STATE_ZONES.get(state.strip().casefold()) if isinstance(state, str) else None
    else:
        name = COUNTRY_ZONES.get(country or "")
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
