"""Building blocks of the configuration model: durations and the section base class."""

from __future__ import annotations

import math
import re
import types
import typing
from datetime import timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    field_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_EXAMPLES = "a duration such as 30s, 15m, 4h or 2d"
MAX_DURATION = timedelta(days=3650)
"""The longest duration any key takes (ten years); more is a typo, not a setting."""


def _shown(given: object) -> str:
    """``given`` as a message quotes it: its repr, cut to a readable length."""
    text = repr(given)
    return text if len(text) <= 40 else text[:36] + "…" + text[-3:]


def _seconds(seconds: float, given: object) -> timedelta:
    if math.isnan(seconds):
        raise ValueError(f"{_shown(given)} is not {_EXAMPLES}")
    if seconds < 0:
        raise ValueError(f"{_shown(given)} is negative: give {_EXAMPLES}")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{_shown(given)} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def _parse_duration(value: object) -> object:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_EXAMPLES}")
    if isinstance(value, int | float):
        return _seconds(float(value), value)
    if isinstance(value, str):
        if value.startswith("P"):
            return value  # ISO 8601 (PT4H), as pydantic writes durations out
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{_shown(value)} is not {_EXAMPLES}")
        return _seconds(float(match.group(1)) * _UNIT_SECONDS[match.group(2)], value)
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be longer than 0 s: give {_EXAMPLES}")
    return _not_negative(value)


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"is negative: give {_EXAMPLES}")
    if value > MAX_DURATION:
        raise ValueError(f"is longer than {MAX_DURATION.days} days")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]
"""A positive duration of at most :data:`MAX_DURATION`."""
NonNegativeDuration = Annotated[
    timedelta, BeforeValidator(_parse_duration), AfterValidator(_not_negative)
]
"""A duration that may also be 0."""


def _takes_bool(annotation: object) -> bool:
    if annotation is bool:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_takes_bool(arg) for arg in typing.get_args(annotation))
    return False


class Section(BaseModel):
    """A section of the file: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """``key: ""`` in YAML means the same as leaving the key out where that is allowed;
        ``true``/``false`` (or YAML's ``yes``/``on``) is refused where no boolean belongs,
        rather than read as the number 1 or 0."""
        if isinstance(value, bool):
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and not _takes_bool(field.annotation):
                raise ValueError("true/false is not a value this key takes")
            return value
        return None if value == "" else value
