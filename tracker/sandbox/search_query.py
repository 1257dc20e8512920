"""Shopify's search syntax (the ``query:`` argument of list fields), parsed into a small tree.

Pure: no I/O, no knowledge of orders. :func:`parse_search_query` turns text into a tree of
:class:`Term`, :class:`And`, :class:`Or` and :class:`Not`; :func:`evaluate` runs that tree against
one object with a caller-supplied term matcher.

Grammar (what Shopify documents for its search syntax, minus fuzzy and range shortcuts)::

    query   := or_expr
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= unary (["AND"] unary)*          # juxtaposition is an implicit AND
    unary   := ("NOT" | "-") unary | "(" query ")" | term
    term    := word | field ":" [">" | ">=" | "<" | "<="] value
    value   := word | '...' | "..."            # quotes may contain spaces; \\ escapes

``AND``, ``OR`` and ``NOT`` are operators only in upper case, as at Shopify; in lower case they
are ordinary words. A term without a field is free text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Comparator = Literal[":", ">", ">=", "<", "<="]


class SearchSyntaxError(ValueError):
    """The query text is not valid search syntax (unbalanced parentheses, dangling operator)."""


@dataclass(frozen=True)
class Term:
    """``field:value`` (op ``":"``), ``field:>=value`` and so on; ``field`` None: free text."""

    field: str | None
    op: Comparator
    value: str


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Term | And | Or | Not

# A term matcher answers True / False, or None when the term is to be ignored (unknown field).
TermMatcher = Callable[[Term], bool | None]

_COMPARATORS: tuple[Comparator, ...] = (">=", "<=", ">", "<")
_TokenKind = Literal["(", ")", "AND", "OR", "NOT", "-", "term"]
_KEYWORDS: dict[str, _TokenKind] = {"AND": "AND", "OR": "OR", "NOT": "NOT", "(": "(", ")": ")"}
_BREAK = frozenset(" \t\r\n()")


@dataclass(frozen=True)
class _Token:
    kind: _TokenKind
    term: Term | None = None


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The quoted string opening at ``text[start]`` and the index just after its closing quote."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return "".join(chars), i + 1
        chars.append(char)
        i += 1
    raise SearchSyntaxError(f"unterminated quote starting at position {start}")


def _read_bare(text: str, start: int) -> tuple[str, int]:
    i = start
    while i < len(text) and text[i] not in _BREAK:
        i += 1
    return text[start:i], i


def _read_term(text: str, start: int) -> tuple[Term, int]:
    """A term: free text, or ``field:[op]value`` with the value bare or quoted."""
    if text[start] in "'\"":
        value, end = _read_quoted(text, start)
        return Term(None, ":", value), end
    i = start
    while i < len(text) and text[i] not in _BREAK and text[i] != ":":
        i += 1
    if i >= len(text) or text[i] != ":":
        return Term(None, ":", text[start:i]), i
    field = text[start:i]
    i += 1
    op: Comparator = ":"
    for candidate in _COMPARATORS:
        if text.startswith(candidate, i):
            op = candidate
            i += len(candidate)
            break
    if i < len(text) and text[i] in "'\"":
        value, end = _read_quoted(text, i)
    else:
        value, end = _read_bare(text, i)
    return Term(field.lower(), op, value), end


def tokenize(text: str) -> list[_Token]:
    """Split ``text`` into parentheses, operators and terms (quotes kept together)."""
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(_KEYWORDS[char]))
            i += 1
        elif char == "-" and i + 1 < len(text) and text[i + 1] not in _BREAK:
            tokens.append(_Token("-"))
            i += 1
        else:
            word, end = _read_bare(text, i)
            if word in ("AND", "OR", "NOT"):
                tokens.append(_Token(_KEYWORDS[word]))
                i = end
                continue
            term, i = _read_term(text, i)
            tokens.append(_Token("term", term))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._pos = 0

    def _peek(self) -> _Token | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self) -> _Token:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def parse(self) -> Node:
        node = self._or()
        if self._peek() is not None:
            raise SearchSyntaxError(f"unexpected {self._peek()!r} at token {self._pos}")
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while (token := self._peek()) is not None and token.kind == "OR":
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _and(self) -> Node:
        parts = [self._unary()]
        while (token := self._peek()) is not None and token.kind not in (")", "OR"):
            if token.kind == "AND":
                self._take()
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _unary(self) -> Node:
        token = self._peek()
        if token is None:
            raise SearchSyntaxError("the query ends where a term was expected")
        self._take()
        if token.kind in ("NOT", "-"):
            return Not(self._unary())
        if token.kind == "(":
            node = self._or()
            closing = self._peek()
            if closing is None or closing.kind != ")":
                raise SearchSyntaxError("missing closing parenthesis")
            self._take()
            return node
        if token.kind == "term" and token.term is not None:
            return token.term
        raise SearchSyntaxError(f"unexpected {token.kind!r} where a term was expected")


def parse_search_query(text: str | None) -> Node | None:
    """The tree for ``text``; None when it is empty (which matches everything).

    Raises :class:`SearchSyntaxError` for unbalanced parentheses, unterminated quotes and
    operators without an operand.
    """
    if text is None or not text.strip():
        return None
    return _Parser(tokenize(text)).parse()


def terms(node: Node | None) -> list[Term]:
    """Every term in the tree, left to right."""
    if node is None:
        return []
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return terms(node.part)
    return [term for part in node.parts for term in terms(part)]


def _evaluate(node: Node, match: TermMatcher) -> bool | None:
    if isinstance(node, Term):
        return match(node)
    if isinstance(node, Not):
        inner = _evaluate(node.part, match)
        return None if inner is None else not inner
    results = [r for r in (_evaluate(part, match) for part in node.parts) if r is not None]
    if not results:
        return None
    return all(results) if isinstance(node, And) else any(results)


def evaluate(node: Node | None, match: TermMatcher) -> bool:
    """Whether an object passes the query, ``match`` deciding each term.

    A term for which ``match`` returns None is dropped, as Shopify drops terms on fields it does
    not know: it neither narrows an AND nor widens an OR, and a query of nothing but ignored
    terms matches everything.
    """
    if node is None:
        return True
    result = _evaluate(node, match)
    return True if result is None else result
