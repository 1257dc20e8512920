"""The configuration reference, generated from the pydantic model: every key, type, default.

``python -m tracker.config_doc > docs/CONFIG.md`` writes it; ``tests/test_config_doc.py`` fails
when the checked-in file differs from what the model says, so the reference cannot drift.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tracker.config import Config
from tracker.config_load import ENV_PREFIX

REGENERATE = "python -m tracker.config_doc > docs/CONFIG.md"

_HEADER = f"""\
# Configuration reference

<!-- Generated from the pydantic model (tracker/config.py): do not edit by hand.
     Regenerate: {REGENERATE}
     tests/test_config_doc.py fails when this file differs from the model. -->

One YAML file, `tracker run --config FILE` (default `./config.yaml`; when that file is absent
every key takes its default). `config.example.yaml` is a commented example of the same keys.
Unknown keys are errors, and a mistake is reported with the file, the key path and the problem
(`tracker check-config` checks a file without starting anything).

**Environment.** Every key can be set from the environment as `{ENV_PREFIX}<SECTION>__<KEY>`,
upper case, `__` between levels and list items by index: `{ENV_PREFIX}SHOPS__0__ACCESS_TOKEN`
sets `shops[0].access_token`, `{ENV_PREFIX}CARRIERS__DHL__API_KEY` sets
`carriers.dhl.api_key`. The environment wins over the file. `{ENV_PREFIX}DATABASE_URL` is
accepted as the short form of `{ENV_PREFIX}DATABASE__URL`. Keep secrets (marked *secret* below)
in the environment rather than in the file; they are masked in logs.

**Values.** A duration is `30s`, `15m`, `4h`, `2d`, `500ms` or a number of seconds. An empty
value (`key: ""`) means the same as leaving the key out. Relative paths are relative to the
configuration file.
"""


@dataclass(frozen=True, slots=True)
class Key:
    """One documented key: its dotted path, what it takes, its default and its meaning."""

    path: str
    env: str
    type: str
    default: str
    description: str


@dataclass(frozen=True, slots=True)
class Section:
    """A model documented as one table: ``database``, ``shops[]``, ``web.auth``, ..."""

    path: str
    title: str
    description: str
    keys: tuple[Key, ...]


def sections(model: type[BaseModel] = Config) -> list[Section]:
    """Every section of ``model``, depth first, the top level first."""
    found: list[Section] = []
    _walk(model, "", "", "Top level", model.__doc__ or "", found)
    return found


def undocumented_fields(model: type[BaseModel] = Config) -> list[str]:
    """Dotted paths of the fields that have no ``description`` (there should be none)."""
    return [key.path for section in sections(model) for key in section.keys if not key.description]


def render(model: type[BaseModel] = Config) -> str:
    """The whole reference as Markdown."""
    out = [_HEADER]
    for section in sections(model):
        out.append(f"\n## {section.title}\n")
        if section.description:
            out.append(f"\n{section.description}\n")
        out.append("\n| key | type | default | description |\n|---|---|---|---|\n")
        for key in section.keys:
            cells = (
                f"`{key.path}`<br>`{key.env}`" if key.env else f"`{key.path}`",
                key.type,
                key.default,
                key.description,
            )
            out.append("| " + " | ".join(_cell(cell) for cell in cells) + " |\n")
    return "".join(out)


def _walk(
    model: type[BaseModel],
    path: str,
    env: str,
    title: str,
    description: str,
    found: list[Section],
) -> None:
    keys: list[Key] = []
    children: list[tuple[type[BaseModel], str, str, str]] = []
    for name, info in model.model_fields.items():
        key_path = f"{path}.{name}" if path else name
        key_env = f"{env}__{name.upper()}" if env else ENV_PREFIX + name.upper()
        nested = _nested(info.annotation)
        if nested is not None:
            child, suffix, env_suffix = nested
            children.append(
                (child, key_path + suffix, key_env + env_suffix, info.description or "")
            )
        keys.append(
            Key(
                path=key_path,
                env="" if nested is not None else key_env + _env_suffix(info.annotation),
                type=_type_name(info),
                default=_default(info),
                description=_description(info),
            )
        )
    found.append(Section(path or "(top level)", title, " ".join(description.split()), tuple(keys)))
    for child, child_path, child_env, child_description in children:
        _walk(child, child_path, child_env, f"`{child_path}`", child_description, found)


def _nested(annotation: Any) -> tuple[type[BaseModel], str, str] | None:
    """The model a field holds (directly, optionally, as list items or mapping values)."""
    annotation = _without_none(annotation)
    if _is_model(annotation):
        return annotation, "", ""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and args and _is_model(args[0]):
        return args[0], "[]", "__<N>"
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return args[1], ".<code>", "__<CODE>"
    return None


def _env_suffix(annotation: Any) -> str:
    """What follows a mapping's or list's variable name: its keys or indexes."""
    origin = get_origin(_without_none(annotation))
    return "__<KEY>" if origin is dict else "__<N>" if origin is list else ""


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _type_name(info: FieldInfo) -> str:
    name = _annotation_name(info.annotation)
    limits = _limits(info)
    return f"{name} ({limits})" if limits else name


def _annotation_name(annotation: Any) -> str:
    optional = _without_none(annotation) is not annotation
    annotation = _without_none(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if _is_model(annotation):
        name = "section"
    elif origin is Literal:
        name = "one of " + ", ".join(f"`{arg}`" for arg in args)
    elif origin is list:
        name = f"list of {_plural(args[0])}"
    elif origin is dict:
        name = f"mapping of {_annotation_name(args[0])} to {_annotation_name(args[1])}"
    elif annotation is SecretStr:
        name = "string, *secret*"
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        name = "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    else:
        name = _SIMPLE.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return f"{name}, optional" if optional else name


def _plural(annotation: Any) -> str:
    return "sections" if _is_model(annotation) else _annotation_name(annotation) + "s"


_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    timedelta: "duration",
    Path: "path",
}


def _limits(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {item.lt}")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        produced = info.default_factory()  # type: ignore[call-arg]
        return "(section)" if isinstance(produced, BaseModel) else "empty"
    return _value(info.default)


def _value(value: object) -> str:
    if value is None or value is PydanticUndefined:
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    return f"`{value}`"


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=4)`` -> ``4h``: the shortest way the configuration file accepts."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _description(info: FieldInfo) -> str:
    return " ".join((info.description or "").split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
