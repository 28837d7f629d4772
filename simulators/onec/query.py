"""OData v3 `$filter` as 1C understands it, and the other query options.

The filter is parsed into a small AST and compiled into a closure over a row handle, so a
predicate costs a few Python calls per row. 1C specifics reproduced:

* string comparison is case-insensitive and ignores trailing spaces (1C query semantics);
* `substringof`, `startswith`, `endswith`, `like` (ПОДОБНО), `concat`, `substring`, date parts,
  `round`, `cast`, `isof`, lambdas `any`/`all` over tabular sections work;
* `tolower`, `toupper`, `length`, `indexof`, `replace`, `trim`, … are refused (400, code 21);
* a composite field compared with a plain `guid'…'` never matches (only `cast(…)` does);
* an unknown property makes the whole filter silently empty (reported in the wild).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from simulators.onec.errors import ODataError, bad_query, unsupported_function

# ---------------------------------------------------------------------------------------- values


class _Missing:
    """Value of a property the object does not have."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Guid(str):
    """A `guid'…'` literal (lower case); distinguishes keys from string literals for pushdown."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Composite:
    """Value of a composite-type field: the key and its `StandardODATA.<Type>` name."""

    key: str
    type: str


# ---------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any


@dataclass(frozen=True, slots=True)
class Prop:
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Bin:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Any


@dataclass(frozen=True, slots=True)
class Lambda:
    collection: tuple[str, ...]
    kind: str  # any | all
    var: str | None
    body: Any


# ---------------------------------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<typed>(?:guid|datetime|datetimeoffset|time|binary|X)'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<ident>[^\W\d]\w*)
  | (?P<punct>[(),/:*-])
    """,
    re.VERBOSE,
)

SUPPORTED = {
    "substringof": (2, 2), "startswith": (2, 2), "endswith": (2, 2), "like": (2, 2), "concat": (2, 2),
    "substring": (2, 3), "year": (1, 1), "month": (1, 1), "day": (1, 1), "hour": (1, 1),
    "minute": (1, 1), "second": (1, 1), "quarter": (1, 1), "dayofweek": (1, 1), "dayofyear": (1, 1),
    "dateadd": (3, 3), "datedifference": (3, 3), "cast": (2, 2), "isof": (1, 2), "round": (1, 2),
}
UNSUPPORTED = {
    "length", "lenght", "indexof", "replace", "tolower", "toupper", "trim", "years", "days", "hours",
    "minutes", "seconds", "months", "floor", "ceiling", "time", "date", "now", "totaloffsetminutes",
    "fractionalseconds", "mindatetime", "maxdatetime", "geo.distance", "geo.length", "geo.intersects",
}
COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_query(f"недопустимый символ в позиции {pos + 1}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("end", "", pos))
    return out


def parse_datetime(text: str) -> datetime:
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S.%f"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise bad_query(f"неверное значение даты '{text}'")


def _typed_literal(text: str) -> Any:
    prefix, _, rest = text.partition("'")
    body = rest[:-1]
    if prefix == "guid":
        if not re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", body):
            raise bad_query(f"неверное значение guid'{body}'")
        return Guid(body.lower())
    if prefix in ("datetime", "datetimeoffset"):
        return parse_datetime(body[:19] if prefix == "datetimeoffset" else body)
    return body


# ---------------------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent with OData precedence: or < and < equality/relational < add < mul < unary."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise bad_query(f"ожидалось '{text}' в позиции {tok.pos + 1}, получено '{tok.text}'")

    def parse(self) -> Any:
        node = self.or_()
        if self.peek().kind != "end":
            tok = self.peek()
            raise bad_query(f"лишний текст в позиции {tok.pos + 1}: '{self.text[tok.pos:tok.pos + 20]}'")
        return node

    def _kw(self, *words: str) -> str | None:
        tok = self.peek()
        if tok.kind == "ident" and tok.text in words:
            self.i += 1
            return tok.text
        return None

    def or_(self) -> Any:
        node = self.and_()
        while self._kw("or"):
            node = Bin("or", node, self.and_())
        return node

    def and_(self) -> Any:
        node = self.cmp()
        while self._kw("and"):
            node = Bin("and", node, self.cmp())
        return node

    def cmp(self) -> Any:
        node = self.add()
        while op := self._kw(*COMPARISONS):
            node = Bin(op, node, self.add())
        return node

    def add(self) -> Any:
        node = self.mul()
        while op := self._kw("add", "sub"):
            node = Bin(op, node, self.mul())
        return node

    def mul(self) -> Any:
        node = self.unary()
        while op := self._kw("mul", "div", "mod"):
            node = Bin(op, node, self.unary())
        return node

    def unary(self) -> Any:
        if self._kw("not"):
            return Unary("not", self.unary())
        if self.peek().text == "-":
            self.take()
            return Unary("-", self.unary())
        return self.primary()

    def primary(self) -> Any:
        tok = self.take()
        if tok.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind == "string":
            return Lit(tok.text[1:-1].replace("''", "'"))
        if tok.kind == "typed":
            return Lit(_typed_literal(tok.text))
        if tok.kind == "number":
            text = tok.text.rstrip("mMdDfFlL")
            return Lit(float(text) if any(c in text for c in ".eE") else int(text))
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                return Lit(tok.text == "true")
            if tok.text == "null":
                return Lit(None)
            if self.peek().text == "(":
                return self.call(tok)
            return self.path(tok.text)
        raise bad_query(f"неожиданный элемент '{tok.text}' в позиции {tok.pos + 1}")

    def call(self, tok: _Tok) -> Any:
        name = tok.text
        if name in UNSUPPORTED:
            raise unsupported_function(name)
        if name not in SUPPORTED:
            raise bad_query(f"неизвестная функция '{name}'")
        self.expect("(")
        args: list[Any] = []
        if self.peek().text != ")":
            args.append(self.or_())
            while self.peek().text == ",":
                self.take()
                args.append(self.or_())
        self.expect(")")
        low, high = SUPPORTED[name]
        if not low <= len(args) <= high:
            raise ODataError(400, "21", f"Неверное количество параметров функции \"{name}\"")
        return Call(name, tuple(args))

    def path(self, first: str) -> Any:
        parts = [first]
        while self.peek().text == "/":
            self.take()
            tok = self.take()
            if tok.kind != "ident":
                raise bad_query(f"ожидалось имя свойства в позиции {tok.pos + 1}")
            if tok.text in ("any", "all") and self.peek().text == "(":
                return self.lambda_(tuple(parts), tok.text)
            parts.append(tok.text)
        return Prop(tuple(parts))

    def lambda_(self, collection: tuple[str, ...], kind: str) -> Any:
        self.expect("(")
        if self.peek().text == ")":
            self.take()
            return Lambda(collection, kind, None, Lit(True))
        var = self.take()
        if var.kind != "ident":
            raise bad_query("ожидалась переменная лямбда-выражения")
        self.expect(":")
        body = self.or_()
        self.expect(")")
        return Lambda(collection, kind, var.text, body)


def parse_filter(text: str) -> Any:
    """Parse a `$filter` (or a virtual-table `Condition`) into an AST; raises ODataError 400."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------- compile


class Context(Protocol):
    """What a compiled expression needs from a table: a getter per property path."""

    def getter(self, path: tuple[str, ...]) -> Callable[[Any], Any] | None: ...


class DictContext:
    """Context over plain dicts (tabular-section rows inside lambdas, virtual-table records)."""

    def getter(self, path: tuple[str, ...]) -> Callable[[Any], Any] | None:
        if len(path) != 1:
            return None
        name = path[0]
        return lambda row: row.get(name, MISSING)


class UnknownProperty(Exception):
    """Raised while compiling; the caller turns the whole filter into 'no rows'."""


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        return v.casefold().rstrip()
    return v


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return False
    if isinstance(a, Composite) or isinstance(b, Composite):
        same = isinstance(a, Composite) and isinstance(b, Composite) and a.key == b.key and (
            a.type.rsplit(".", 1)[-1] == b.type.rsplit(".", 1)[-1])
        if op == "eq":
            return same
        if op == "ne":
            return not same
        return False
    a, b = _norm(a), _norm(b)
    if op == "eq":
        return bool(a == b)
    if op == "ne":
        return bool(a != b)
    if a is None or b is None:
        return False
    try:
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
        if op == "lt":
            return bool(a < b)
        return bool(a <= b)
    except TypeError:
        return False


def _like(value: Any, pattern: Any) -> bool:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    regex = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            regex.append(".*")
        elif ch == "_":
            regex.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                regex.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                regex.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            regex.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), value, re.IGNORECASE | re.DOTALL) is not None


_UNITS = {
    "second": 1, "секунда": 1, "minute": 60, "минута": 60, "hour": 3600, "час": 3600, "day": 86400,
    "день": 86400, "week": 604800, "неделя": 604800,
}
_MONTHS = {"month": 1, "месяц": 1, "quarter": 3, "квартал": 3, "year": 12, "год": 12}


def _dateadd(d: Any, unit: Any, n: Any) -> Any:
    if not isinstance(d, datetime) or not isinstance(n, int | float):
        return None
    unit = str(unit).casefold()
    if unit in _UNITS:
        return d + timedelta(seconds=_UNITS[unit] * n)
    if unit in _MONTHS:
        months = d.year * 12 + d.month - 1 + int(n) * _MONTHS[unit]
        year, month = divmod(months, 12)
        day = min(d.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30,
                          31, 31, 30, 31, 30, 31][month])
        return d.replace(year=year, month=month + 1, day=day)
    raise ODataError(400, "21", f"Неверный параметр функции dateadd: '{unit}'")


def _datediff(a: Any, b: Any, unit: Any) -> Any:
    if not isinstance(a, datetime) or not isinstance(b, datetime):
        return None
    unit = str(unit).casefold()
    if unit in _UNITS:
        return int((b - a).total_seconds() // _UNITS[unit])
    if unit in _MONTHS:
        return ((b.year - a.year) * 12 + b.month - a.month) // _MONTHS[unit]
    raise ODataError(400, "21", f"Неверный параметр функции datedifference: '{unit}'")


def _datepart(name: str, d: Any) -> Any:
    if not isinstance(d, datetime):
        return None
    return {
        "year": d.year, "month": d.month, "day": d.day, "hour": d.hour, "minute": d.minute, "second": d.second,
        "quarter": (d.month - 1) // 3 + 1, "dayofweek": d.isoweekday(), "dayofyear": d.timetuple().tm_yday,
    }[name]


def _arith(op: str, a: Any, b: Any) -> Any:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or isinstance(a, bool):
        return None
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if b == 0:
        raise ODataError(500, "-1", "Деление на 0")
    return a / b if op == "div" else math.fmod(a, b)


def _cast(value: Any, type_name: Any) -> Any:
    type_name = str(type_name)
    if type_name.startswith("Edm."):
        if type_name == "Edm.String":
            return "" if value is None else str(value)
        if type_name in ("Edm.Double", "Edm.Decimal"):
            return float(value) if isinstance(value, int | float) else None
        if type_name.startswith("Edm.Int"):
            return int(value) if isinstance(value, int | float) else None
        return value
    full = type_name if type_name.startswith("StandardODATA.") else f"StandardODATA.{type_name}"
    return Composite(str(value).lower(), full)


def compile_expr(node: Any, ctx: Context) -> Callable[[Any], Any]:
    """Compile an AST into `f(row_handle) -> value`; raises UnknownProperty for unknown paths."""
    if isinstance(node, Lit):
        value = node.value
        return lambda r: value
    if isinstance(node, Prop):
        get = ctx.getter(node.path)
        if get is None:
            raise UnknownProperty("/".join(node.path))
        return get
    if isinstance(node, Unary):
        inner = compile_expr(node.operand, ctx)
        if node.op == "not":
            return lambda r: not _truthy(inner(r))
        return lambda r: _arith("sub", 0, inner(r))
    if isinstance(node, Bin):
        left, right = compile_expr(node.left, ctx), compile_expr(node.right, ctx)
        op = node.op
        if op == "and":
            return lambda r: _truthy(left(r)) and _truthy(right(r))
        if op == "or":
            return lambda r: _truthy(left(r)) or _truthy(right(r))
        if op in COMPARISONS:
            if op == "eq" and isinstance(node.right, Lit) and not isinstance(node.right.value, str | type(None)):
                lit = node.right.value  # hot path: Field eq guid'…' / true / 5
                if not isinstance(lit, Composite):
                    return lambda r: (v := left(r)) is not MISSING and not isinstance(v, Composite) and v == lit
            if op == "eq" and isinstance(node.right, Lit) and isinstance(node.right.value, str):
                lit = _norm(node.right.value)
                return lambda r: (v := left(r)).__class__ is str and v.casefold().rstrip() == lit
            return lambda r: _compare(op, left(r), right(r))
        return lambda r: _arith(op, left(r), right(r))
    if isinstance(node, Call):
        return _compile_call(node, ctx)
    if isinstance(node, Lambda):
        coll = ctx.getter(node.collection)
        if coll is None:
            raise UnknownProperty("/".join(node.collection))
        var = node.var
        inner_ctx = _LambdaContext(var)
        body = compile_expr(node.body, inner_ctx)
        if node.kind == "any":
            return lambda r: any(_truthy(body(row)) for row in (coll(r) or ()) if isinstance(row, dict))
        return lambda r: all(_truthy(body(row)) for row in (coll(r) or ()) if isinstance(row, dict))
    raise bad_query(f"неподдерживаемое выражение {node!r}")


class _LambdaContext:
    def __init__(self, var: str | None) -> None:
        self.var = var

    def getter(self, path: tuple[str, ...]) -> Callable[[Any], Any] | None:
        if self.var and len(path) == 2 and path[0] == self.var:
            name = path[1]
            return lambda row: row.get(name, MISSING)
        return None


def _truthy(v: Any) -> bool:
    return v is True or (v is not MISSING and v is not None and v is not False and bool(v))


def _compile_call(node: Call, ctx: Context) -> Callable[[Any], Any]:
    args = [compile_expr(a, ctx) for a in node.args]
    name = node.name
    if name == "substringof":
        a, b = args
        return lambda r: isinstance(x := a(r), str) and isinstance(y := b(r), str) and x.casefold() in y.casefold()
    if name == "startswith":
        a, b = args
        return lambda r: isinstance(x := a(r), str) and isinstance(y := b(r), str) and x.casefold().startswith(
            y.casefold())
    if name == "endswith":
        a, b = args
        return lambda r: isinstance(x := a(r), str) and isinstance(y := b(r), str) and x.casefold().rstrip().endswith(
            y.casefold())
    if name == "like":
        a, b = args
        return lambda r: _like(a(r), b(r))
    if name == "concat":
        a, b = args
        return lambda r: f"{a(r)}{b(r)}"
    if name == "substring":
        s, start = args[0], args[1]
        length = args[2] if len(args) == 3 else None

        def substring(r: Any) -> Any:
            text, pos = s(r), start(r)
            if not isinstance(text, str) or not isinstance(pos, int):
                return None
            return text[pos:] if length is None else text[pos:pos + int(length(r))]

        return substring
    if name in ("year", "month", "day", "hour", "minute", "second", "quarter", "dayofweek", "dayofyear"):
        (a,) = args
        return lambda r: _datepart(name, a(r))
    if name == "dateadd":
        d, unit, n = args
        return lambda r: _dateadd(d(r), unit(r), n(r))
    if name == "datedifference":
        a, b, unit = args
        return lambda r: _datediff(a(r), b(r), unit(r))
    if name == "round":
        a = args[0]
        digits = args[1] if len(args) == 2 else (lambda r: 0)
        return lambda r: round(v, int(digits(r))) if isinstance(v := a(r), int | float) else None
    if name == "cast":
        a, t = args
        return lambda r: _cast(a(r), t(r))
    if name == "isof":
        if len(args) == 1:
            return lambda r: True
        a, t = args
        return lambda r: isinstance(v := a(r), Composite) and v.type.rsplit(".", 1)[-1] == str(t(r)).rsplit(".", 1)[-1]
    raise unsupported_function(name)


def compile_filter(node: Any, ctx: Context) -> Callable[[Any], bool]:
    """A predicate for a parsed filter; an unknown property yields 'never' (silently empty)."""
    try:
        expr = compile_expr(node, ctx)
    except UnknownProperty:
        return lambda r: False
    return lambda r: _truthy(expr(r))




# ---------------------------------------------------------------------------------------- pushdown


def restrictions(node: Any, columns: frozenset[str] | set[str]) -> tuple[dict[str, frozenset[Any]] | None, bool]:
    """Equality restrictions the filter implies on `columns`: ({column: allowed values}, exact).

    `exact` means the filter is equivalent to the restriction, so it need not be evaluated again.
    None means "no usable restriction". Used to turn `Ref_Key eq guid'…' or …` chunks and
    `Condition='ВидЦены_Key eq guid'…''` into direct lookups instead of scans.
    """
    if isinstance(node, Bin) and node.op == "eq":
        for prop, lit in ((node.left, node.right), (node.right, node.left)):
            if (isinstance(prop, Prop) and len(prop.path) == 1 and prop.path[0] in columns and isinstance(lit, Lit)
                    and (isinstance(lit.value, Guid | bool | int) or not isinstance(lit.value, str | type(None)))):
                return {prop.path[0]: frozenset([lit.value])}, True
        return None, False
    if isinstance(node, Bin) and node.op == "and":
        r1, e1 = restrictions(node.left, columns)
        r2, e2 = restrictions(node.right, columns)
        if r1 is None:
            return r2, False
        if r2 is None:
            return r1, False
        merged = dict(r1)
        for col, vals in r2.items():
            merged[col] = merged[col] & vals if col in merged else vals
        return merged, e1 and e2
    if isinstance(node, Bin) and node.op == "or":
        r1, e1 = restrictions(node.left, columns)
        r2, e2 = restrictions(node.right, columns)
        if r1 is None or r2 is None or len(r1) != 1 or r1.keys() != r2.keys():
            return None, False
        col = next(iter(r1))
        return {col: r1[col] | r2[col]}, e1 and e2
    return None, False


# ---------------------------------------------------------------------------------------- options


@dataclass
class Select:
    """Parsed `$select`: None = everything (incl. tabular sections)."""

    fields: list[str] | None = None
    all_plain: bool = False  # `**`: everything except tabular sections
    sub: dict[str, list[str]] = field(default_factory=dict)  # Товары/Цена → {"Товары": ["Цена"]}
    presentations: set[str] = field(default_factory=set)
    all_presentations: bool = False


def parse_select(text: str | None) -> Select:
    sel = Select()
    if not text or not text.strip():
        return sel
    items = [t.strip() for t in text.split(",") if t.strip()]
    plain: list[str] = []
    everything = False
    for item in items:
        if item == "*":
            everything = True
        elif item == "**":
            sel.all_plain = True
        elif item == "*____Presentation":
            sel.all_presentations = True
        elif item.endswith("____Presentation"):
            sel.presentations.add(item[: -len("____Presentation")])
        elif "/" in item:
            tab, _, sub = item.partition("/")
            sel.sub.setdefault(tab, []).append(sub)
        elif re.fullmatch(r"[^\W\d]\w*", item):
            plain.append(item)
        else:
            raise bad_query(f"неверный элемент $select '{item}'")
    if not everything and not sel.all_plain:
        sel.fields = plain
    elif sel.all_plain and plain:
        sel.fields = None
    return sel


def parse_orderby(text: str | None) -> list[tuple[tuple[str, ...], bool]]:
    """`Code desc, Description` → [((\"Code\",), False), ((\"Description\",), True)] (True = ascending)."""
    out: list[tuple[tuple[str, ...], bool]] = []
    if not text or not text.strip():
        return out
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise bad_query(f"неверный элемент $orderby '{item.strip()}'")
        path = tuple(words[0].split("/"))
        if not all(re.fullmatch(r"[^\W\d]\w*", p) for p in path):
            raise bad_query(f"неверный элемент $orderby '{item.strip()}'")
        out.append((path, len(words) == 1 or words[1].lower() == "asc"))
    return out


def parse_int(name: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise bad_query(f"неверное значение параметра {name}: '{text}'")
    return int(text)


def sort_key(value: Any) -> tuple[int, Any]:
    """Total order over mixed 1C values: empties first, strings case-insensitive."""
    if value is None or value is MISSING:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value.casefold())
    if isinstance(value, datetime):
        return (4, value)
    if isinstance(value, Composite):
        return (5, (value.type, value.key))
    return (6, repr(value))
