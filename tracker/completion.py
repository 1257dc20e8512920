"""``tracker completion bash|zsh``: a shell completion script generated from the argparse parser.

The script is static: it knows every command, option and choice the parser had when it was
printed, and completes file names for options that take a file. Regenerate it after an upgrade.
zsh gets the same script through zsh's ``bashcompinit``.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from pathlib import Path

SHELLS = ("bash", "zsh")


@dataclass
class CommandSpec:
    """What may follow one command path (``""``, ``"run"``, ``"webhooks/register"``)."""

    path: str
    commands: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    valued: dict[str, list[str] | None] = field(default_factory=dict)
    """Options that take a value: their choices, or None for a file name."""
    free: set[str] = field(default_factory=set)
    """Options whose value is free text (nothing to complete)."""
    arguments: list[str] = field(default_factory=list)
    """The choices of positional arguments (``bash``, ``zsh``)."""


def command_specs(parser: argparse.ArgumentParser) -> list[CommandSpec]:
    """Every command path of ``parser``, the top level first."""
    found: list[CommandSpec] = []
    _collect(parser, "", found)
    return found


def _collect(parser: argparse.ArgumentParser, path: str, found: list[CommandSpec]) -> None:
    spec = CommandSpec(path)
    found.append(spec)
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                spec.commands.append(name)
                children.append((name, sub))
            continue
        if not action.option_strings:
            spec.arguments.extend(str(choice) for choice in action.choices or ())
            continue
        for option in action.option_strings:
            if option.startswith("--"):
                spec.flags.append(option)
                if action.nargs != 0:
                    _value_kind(spec, option, action)
    for name, sub in children:
        _collect(sub, f"{path}/{name}" if path else name, found)


def _value_kind(spec: CommandSpec, option: str, action: argparse.Action) -> None:
    if action.choices is not None:
        spec.valued[option] = [str(choice) for choice in action.choices]
    elif action.type is Path or action.metavar == "FILE":
        spec.valued[option] = None
    else:
        spec.free.add(option)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (``bash`` or ``zsh``)."""
    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell!r}; choose one of {', '.join(SHELLS)}")
    prog = parser.prog
    body = _bash(parser, prog)
    if shell == "bash":
        return (
            f"# bash completion for {prog}; load it with\n"
            f'#   eval "$({prog} completion bash)"\n'
            f"# or save it as ~/.local/share/bash-completion/completions/{prog}\n" + body
        )
    return (
        f"#compdef {prog}\n"
        f"# zsh completion for {prog}; after compinit in ~/.zshrc:\n"
        f'#   eval "$({prog} completion zsh)"\n'
        "autoload -U +X bashcompinit && bashcompinit\n" + body
    )


def _bash(parser: argparse.ArgumentParser, prog: str) -> str:
    specs = command_specs(parser)
    function = "_" + "".join(c if c.isalnum() else "_" for c in prog) + "_complete"
    steps: list[str] = []
    values: list[str] = []
    words: list[str] = []
    for spec in specs:
        for name in spec.commands:
            child = f"{spec.path}/{name}" if spec.path else name
            steps.append(f"            {_quote(spec.path + ':' + name)}) path={_quote(child)} ;;")
        takes_value = sorted([*spec.valued, *spec.free])
        if takes_value:
            patterns = "|".join(_quote(f"{spec.path}:{option}") for option in takes_value)
            steps.append(f"            {patterns}) want=$word ;;")
        for option, choices in sorted(spec.valued.items()):
            key = _quote(f"{spec.path}:{option}")
            if choices is None:
                values.append(
                    f"            {key}) compopt -o filenames 2>/dev/null; "
                    'COMPREPLY=($(compgen -f -- "$cur")) ;;'
                )
            else:
                joined = shlex.quote(" ".join(choices))
                values.append(f'            {key}) COMPREPLY=($(compgen -W {joined} -- "$cur")) ;;')
        offered = " ".join([*spec.commands, *spec.arguments, *sorted(spec.flags)])
        words.append(f"        {_quote(spec.path)}) offered={shlex.quote(offered)} ;;")
    lines = [
        f"{function}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" path="" want="" word="" offered="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        '        if [[ -n "$want" ]]; then want=""; continue; fi',
        '        case "$path:$word" in',
        *steps,
        "        esac",
        "    done",
        '    if [[ -n "$want" ]]; then',
        '        case "$path:$want" in',
        *values,
        "        esac",
        "        return 0",
        "    fi",
        '    case "$path" in',
        *words,
        "    esac",
        '    COMPREPLY=($(compgen -W "$offered" -- "$cur"))',
        "}",
        f"complete -F {function} {prog}",
        "",
    ]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
