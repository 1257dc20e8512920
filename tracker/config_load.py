"""Reading the configuration: a YAML file, then ``TRACKER_*`` environment variables.

Environment variables override the file: ``TRACKER_DATABASE__URL`` sets ``database.url``; list
items go by index, so ``TRACKER_SHOPS__0__ACCESS_TOKEN`` sets the first store's token.
``TRACKER_DATABASE_URL`` is accepted as the usual short form. A mistake names the file, the key
path and the problem; nothing half-read is ever used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tracker.config import Config

DEFAULT_CONFIG_PATH = Path("config.yaml")
MAX_LIST_INDEX = 999
"""The largest list index a ``TRACKER_A__<n>__B`` variable may name."""
MAX_PROBLEMS_SHOWN = 20
ENV_PREFIX = "TRACKER_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (default ``./config.yaml``; absent default file = all defaults) plus env."""
    env = os.environ if env is None else env
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    data: dict[str, Any] = {}
    if path.exists():
        data = _read_yaml(path)
    elif explicit:
        raise ConfigError(f"{path}: no such file")
    sources: dict[tuple[str, ...], str] = {}
    _apply_env(data, env, sources)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, sources)) from None
    if not config.database.data_dir.is_absolute():
        base = path.resolve().parent if path.exists() else Path.cwd()
        config.database.data_dir = base / config.database.data_dir
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections, not {type(data).__name__}"
        )
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML itself keeps
    the last one silently, so half of a section would be lost without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"the key {key!r} is given twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str], sources: dict[tuple[str, ...], str]
) -> None:
    """Set ``TRACKER_A__B__0__C`` into ``data['a']['b'][0]['c']``."""
    if "TRACKER_DATABASE_URL" in env:
        data.setdefault("database", {})
        if isinstance(data["database"], dict):
            data["database"]["url"] = env["TRACKER_DATABASE_URL"]
            sources[("database", "url")] = "TRACKER_DATABASE_URL"
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            continue
        node: Any = data
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(node, list) and part.isdigit():
                index = int(part)
                if index > MAX_LIST_INDEX:
                    raise ConfigError(
                        f"{name}: list index {index} is too large (at most {MAX_LIST_INDEX})"
                    )
                while len(node) <= index:
                    node.append({})
                node = node[index]
            elif isinstance(node, dict):
                node = node.setdefault(part, [] if nxt.isdigit() else {})
            else:
                break
        else:
            leaf = path[-1]
            if isinstance(node, dict):
                node[leaf] = env[name]
                sources[tuple(path)] = name


def _describe(path: Path, exc: ValidationError, sources: dict[tuple[str, ...], str]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(top level)"
        origin = sources.get(loc)
        where = f" (from {origin})" if origin else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (misspelt? see config.example.yaml)"
        elif error["type"] == "missing":
            message = "required but missing"
        lines.append(f"{path}: {key}{where}: {message}")
    if len(lines) > MAX_PROBLEMS_SHOWN:
        more = len(lines) - MAX_PROBLEMS_SHOWN
        lines = [*lines[:MAX_PROBLEMS_SHOWN], f"{path}: ... and {more} more problems"]
    return "\n".join(lines)
