"""Docstrings with plain-Unicode maths -> Markdown with LaTeX maths (``docs/unimath.py``) for the site.

* ``segments(text)`` splits prose from maths: a run of formula tokens becomes maths when it holds
  an operator or a mathematical symbol, so "so the VJP passes g through" stays prose.
* ``docstring_to_markdown(doc)`` renders a whole docstring: prose lines join into paragraphs,
  indented formula lines become display maths, reST ````code```` becomes Markdown code (or maths
  when it holds a formula), and "Derivation:" / "Saves:" are set in bold.
"""

from __future__ import annotations

import re

from unimath import (
    CLOSE,
    ENGLISH_SHORT,
    GREEK,
    MATH_CHARS,
    MATH_WORDS,
    OPEN,
    OPERATORS,
    SUBSCRIPTS,
    SUPERSCRIPTS,
    to_latex,
)

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ABBREV = re.compile(r"(?:i\.e\.|e\.g\.|cf\.|vs\.)")
_HYPHENATED = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z]+)+\b|\d+-[A-Za-z]\b")
_POSSESSIVE = re.compile(r"[A-Za-z][A-Za-z0-9_]*'s\b")
_POSSESSIVE_TAIL = re.compile(r"'s\b")
_CODE = re.compile(r"``(.+?)``|`([^`]+)`")

# -- prose and maths ---------------------------------------------------------------------------------
_ATOM_EXTRA = set(GREEK) | set(SUBSCRIPTS) | set(SUPERSCRIPTS) | set("ℒ∂√Σ∑Π∏∫∇∞±∓½¼…_'")
_STRONG_SUB = re.compile(r"(?:^|[^A-Za-z0-9])(?:grad_\w|[A-Za-z]+_[A-Za-z0-9]{1,2}(?![A-Za-z0-9]))")


def segments(text: str) -> list[tuple[str, str]]:
    """Split a line or paragraph of prose into ("prose" | "math" | "code", text) pieces, in order.

    A "math" piece holds the original Unicode (convert it with ``to_latex``)."""
    tokens = _tokens(text)
    out: list[tuple[str, str]] = []
    run: list[tuple[str, int, int]] = []

    def emit(kind: str, piece: str) -> None:
        if out and out[-1][0] == kind and kind == "prose":
            out[-1] = ("prose", out[-1][1] + piece)
        elif piece:
            out.append((kind, piece))

    def flush() -> None:
        lo, hi = 0, len(run)
        while lo < hi and run[lo][0] in ("space", "soft", "op") and not _is_sign(run, lo):
            lo += 1
        while hi > lo and run[hi - 1][0] in ("space", "soft", "op"):
            hi -= 1
        core = run[lo:hi]
        operands = sum(k in ("strong", "neutral", "name") for k, _, _ in core)
        is_math = any(k == "strong" for k, _, _ in core) or (any(k == "op" for k, _, _ in core) and operands >= 2)
        for part, kind in ((run[:lo], "prose"), (core, "math" if is_math else "prose"), (run[hi:], "prose")):
            if not part:
                continue
            if kind == "math":
                emit("math", text[part[0][1]:part[-1][2]])
            else:
                for k, a, b in part:
                    emit("code" if k == "name" else "prose", text[a:b])
        run.clear()

    for kind, a, b in tokens:
        if kind in ("strong", "neutral", "name", "op", "space", "soft"):
            run.append((kind, a, b))
            continue
        flush()
        if kind == "code":
            inner = text[a:b].strip("`")
            emit("math" if set(inner) & MATH_CHARS else "code", inner)
        elif kind == "group":
            emit("prose", text[a])
            for piece in segments(text[a + 1:b - 1]):
                emit(*piece)
            emit("prose", text[b - 1])
        else:
            emit("prose", text[a:b])
    flush()
    return out


def _is_sign(run: list, k: int) -> bool:
    """A '-' or '=' opening a formula ('-½ · g', '= σ + out') belongs to it."""
    return run[k][0] == "op" and k + 1 < len(run) and run[k + 1][0] != "space"


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) for: code, group (prose in brackets), strong / neutral / name atoms, op,
    space, soft (", "), hard (sentence punctuation, dashes) and word (prose)."""
    tokens, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if m := _CODE.match(text, i):
            tokens.append(("code", i, m.end()))
            i = m.end()
        elif c.isspace():
            j = i
            while j < n and text[j].isspace():
                j += 1
            tokens.append(("space", i, j))
            i = j
        elif m := (_ABBREV.match(text, i) or _POSSESSIVE.match(text, i) or _HYPHENATED.match(text, i)
                   or _POSSESSIVE_TAIL.match(text, i)):
            tokens.append(("word", i, m.end()))
            i = m.end()
        elif c in ",;:." and (i + 1 == n or text[i + 1].isspace()):
            tokens.append(("soft" if c == "," else "hard", i, i + 1))
            i += 1
        elif c in OPEN:
            end = _match(text, i)
            if end is None:
                tokens.append(("hard", i, i + 1))
                i += 1
                continue
            inner = text[i + 1:end - 1]
            prose = any(k in ("word", "code") for k, _, _ in _tokens(inner))
            tokens.append(("group" if prose else "strong", i, end))
            i = end
        elif c.isalnum() or c in _ATOM_EXTRA:
            j = _atom_end(text, i)
            if j == i:                                           # a lone ' (quote, possessive)
                tokens.append(("hard", i, i + 1))
                i += 1
                continue
            tokens.append((_classify(text[i:j]), i, j))
            i = j
        elif c in OPERATORS or c in "?":
            tokens.append(("op", i, i + 1))
            i += 1
        else:                                                    # quotes, dashes, '!', ...
            tokens.append(("hard", i, i + 1))
            i += 1
    return tokens


def _atom_end(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        c = text[i]
        if c.isalnum() or c in _ATOM_EXTRA:
            if c == "'" and (i + 1 == n or not text[i + 1].isalnum() and text[i + 1] != "(") and \
                    re.search(r"[A-Za-z]{2,}s$", text[:i]):
                break                                                # the inputs' shapes: plural possessive
            i += 1
        elif c == "^" and i + 1 < n:
            i += 2 if text[i + 1] in "-−+" else 1
        elif c == "." and i + 1 < n and text[i + 1].isalnum():
            i += 1
        elif c in "([{" :
            end = _match(text, i)
            if end is None:
                break
            i = end
        else:
            break
    return i


def _classify(atom: str) -> str:
    called = re.search(r"[\w)\]][(\[]", atom)                         # f(x), x[i]
    if set(atom) & MATH_CHARS or "^" in atom or "'" in atom or _STRONG_SUB.search(atom) or called:
        return "strong"
    if len(atom) == 1 or _NUMBER.fullmatch(atom) or atom in MATH_WORDS or re.fullmatch(r"d[a-z]", atom):
        return "neutral"
    if len(atom) == 2 and atom.isalpha() and atom.lower() not in ENGLISH_SHORT:
        return "neutral"                                             # xp, KH: short names in formulas
    if "_" in atom or "." in atom:
        return "name"
    return "word"


def _match(text: str, i: int) -> int | None:
    """End (exclusive) of the bracket group opening at i; a closer of any kind closes ([a, b) too)."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] in OPEN:
            depth += 1
        elif text[j] in CLOSE:
            depth -= 1
            if depth == 0:
                return j + 1
    return None


# -- whole docstrings --------------------------------------------------------------------------------
_LABEL = re.compile(r"(?<![\w*])(Derivation|Saves)([:.])")


def inline_markdown(text: str) -> str:
    """One paragraph of docstring prose as Markdown: maths in $...$, code in backticks."""
    parts = []
    for kind, piece in segments(text):
        if kind == "math":
            parts.append(f"${to_latex(piece)}$")
        elif kind == "code":
            parts.append(f"`{piece}`")
        else:
            parts.append(_LABEL.sub(r"**\1\2**", piece))
    return "".join(parts).strip()


def docstring_to_markdown(doc: str) -> str:
    """A docstring (as ``inspect.getdoc`` gives it) as Markdown with typeset maths.

    Lines at the paragraph's indentation join into a paragraph; each more-indented line is its
    own block: display maths when it is all formula, else a paragraph of its own."""
    blocks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", doc.strip("\n")):
        lines = [ln for ln in paragraph.splitlines() if ln.strip()]
        base = min(len(ln) - len(ln.lstrip()) for ln in lines)
        prose: list[str] = []
        indent = base
        for line in lines:
            depth = len(line) - len(line.lstrip())
            display = _display(line.strip()) if depth > base else None
            if display or depth != indent:
                if prose:
                    blocks.append(inline_markdown(" ".join(prose)))
                    prose = []
                indent = depth
            if display:
                blocks.append(display)
            else:
                prose.append(line.strip())
        if prose:
            blocks.append(inline_markdown(" ".join(prose)))
    return "\n\n".join(blocks) + "\n"


def _display(line: str) -> str | None:
    """Display maths for an indented line that is all formula (trailing punctuation allowed), else None."""
    pieces = segments(line)
    body = [p for p in pieces if not (p[0] == "prose" and not p[1].strip(" .,;:"))]
    if not body or not all(kind == "math" for kind, _ in body):
        return None
    latex = r" \qquad ".join(to_latex(p) for kind, p in pieces if kind == "math")
    tail = pieces[-1][1].strip() if pieces[-1][0] == "prose" else ""
    return f"$$\n{latex}{tail}\n$$"
