"""Docstrings with plain-Unicode maths -> Markdown with LaTeX maths for the docs site (KaTeX).

The derivations in jtape's docstrings stay readable plain text in code (``∂out_i/∂a_i``, ``Σ_k``,
``b²``, ``aᵀ``, ``g · out``, ``√x``, ``⟨u, v⟩``). For the site they are typeset: this module finds
the maths in a docstring and writes it as LaTeX between ``$...$`` (inline) or ``$$...$$``
(display), which ``pymdownx.arithmatex`` hands to KaTeX.

* ``to_latex(expr)`` converts one Unicode expression (``∂ℒ/∂a_ik = Σ_j g_ij b_kj``) to LaTeX
  (``\\frac{\\partial \\mathcal{L}}{\\partial a_{ik}} = \\sum_j g_{ij} b_{kj}``); its result is ASCII.
* ``segments(text)`` splits prose from maths: a run of formula tokens becomes maths when it holds
  an operator or a mathematical symbol, so "so the VJP passes g through" stays prose.
* ``docstring_to_markdown(doc)`` renders a whole docstring: prose lines join into paragraphs,
  indented formula lines become display maths, reST ````code```` becomes Markdown code (or maths
  when it holds a formula), and "Derivation:" / "Saves:" are set in bold.
"""

from __future__ import annotations

import re

GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
         "θ": "theta", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi", "ρ": "rho",
         "σ": "sigma", "τ": "tau", "φ": "phi", "χ": "chi", "ψ": "psi", "ω": "omega", "Γ": "Gamma",
         "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega"}
SYMBOLS = {"·": r"\cdot", "×": r"\times", "∂": r"\partial", "⟨": r"\langle", "⟩": r"\rangle", "≤": r"\le",
           "≥": r"\ge", "≠": r"\ne", "≈": r"\approx", "→": r"\to", "↦": r"\mapsto", "∈": r"\in", "∞": r"\infty",
           "±": r"\pm", "∓": r"\mp", "∇": r"\nabla", "⊙": r"\odot", "⊗": r"\otimes", "∘": r"\circ",
           "…": r"\ldots", "ℒ": r"\mathcal{L}", "−": "-", "½": r"\tfrac{1}{2}", "¼": r"\tfrac{1}{4}",
           "Σ": r"\sum", "∑": r"\sum", "Π": r"\prod", "∏": r"\prod", "∫": r"\int", "√": r"\sqrt{}"}
SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ₊₋", "0123456789aeoxhklmnpstijruv+-"))
SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺ⁿⁱ", "0123456789-+ni")) | {"ᵀ": r"\top"}
FUNCTIONS = {"exp", "log", "sin", "cos", "tan", "tanh", "max", "min", "det", "arg"}
# Words that are names in formulas: they join a formula next to them but alone they stay prose.
MATH_WORDS = {"out", "input", "kernel", "dim", "exp", "log", "sin", "cos", "tan", "tanh", "max", "min", "grad",
              "sum", "mean", "softmax", "sigmoid", "relu", "shape", "offset", "index", "sign"}
ENGLISH_SHORT = {"an", "as", "at", "be", "by", "do", "if", "in", "is", "it", "no", "of", "on", "or", "so", "to",
                 "up", "we", "us", "ok"}
# Every character that makes a token mathematical, and that must not survive into LaTeX.
MATH_CHARS = set(GREEK) | set(SYMBOLS) | set(SUBSCRIPTS) | set(SUPERSCRIPTS)
OPERATORS = set("=+-*/@<>|") | {"·", "×", "≤", "≥", "≠", "≈", "→", "↦", "∈", "⊙", "⊗", "∘", "−"}
OPEN, CLOSE = "([{⟨", ")]}⟩"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SUFFIX_SUB = re.compile(r"_([A-Za-z0-9]+)")
_ABBREV = re.compile(r"(?:i\.e\.|e\.g\.|cf\.|vs\.)")
_HYPHENATED = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z]+)+\b|\d+-[A-Za-z]\b")
_POSSESSIVE = re.compile(r"[A-Za-z][A-Za-z0-9_]*'s\b")
_POSSESSIVE_TAIL = re.compile(r"'s\b")
_CODE = re.compile(r"``(.+?)``|`([^`]+)`")


# -- one expression -> LaTeX -------------------------------------------------------------------------
def to_latex(expr: str) -> str:
    """LaTeX for one plain-Unicode expression; the result is ASCII."""
    return re.sub(r"\s+", " ", _Converter(expr.replace("...", "…")).run()).strip()


class _Converter:
    def __init__(self, text: str):
        self.s, self.i = text, 0
        self.after_operand = False       # the last thing written was an operand (a thin space may follow)

    def run(self, stop: str = "") -> str:
        out: list[str] = []
        while self.i < len(self.s) and self.s[self.i] not in stop:
            start = self.i
            piece = self.atom(out)
            out.append(piece)
            if not self.s[start].isspace():
                c = self.s[start]
                self.after_operand = c.isalnum() or c in GREEK or c in "([{⟨∂√ℒ½¼"
        return "".join(out)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def atom(self, before: list[str]) -> str:
        c = self.peek()
        if c.isspace():
            j = self.i
            while self.peek().isspace():
                self.i += 1
            if self.i - j >= 3:
                return r" \qquad "
            nxt = self.peek()
            word_after = nxt.isalpha() and nxt.isascii() or nxt in GREEK or nxt == "√"
            after_macro = re.search(r"\\[A-Za-z]+ ?$", "".join(before))      # \sum, \log: no space needed
            return r"\, " if self.after_operand and word_after and not after_macro else " "
        if c == "∂" and (frac := _fraction(self.s, self.i)):
            num, den, self.i = frac
            top = rf"\partial {to_latex(num)}" if num else r"\partial"
            return rf"\frac{{{top}}}{{\partial {to_latex(den)}}}"
        if c == "√":
            self.i += 1
            if self.peek() == "(":
                self.i += 1
                inner = self.run(")")
                self.i += 1
            else:
                inner = self.operand()
            return rf"\sqrt{{{inner}}}" + self.suffixes()
        if c in SUPERSCRIPTS or c in SUBSCRIPTS:                      # "with ᵀ swapping": no base
            return "{}" + self.suffixes()
        if c.isalpha() and c.isascii() or c in GREEK or c in "ℒΣ∑Π∏":
            return self.operand() + self.suffixes()
        if c.isdigit():
            m = _NUMBER.match(self.s, self.i)
            self.i = m.end()
            return m.group(0) + self.suffixes()
        if c in "([⟨" or c == "{":
            self.i += 1
            inner = self.run(CLOSE)
            close = self.peek()
            self.i += 1 if close else 0
            left = {"(": "(", "[": "[", "⟨": r"\langle ", "{": r"\{"}[c]
            right = {")": ")", "]": "]", "⟩": r" \rangle", "}": r"\}", "": ""}[close]
            return left + inner + right + self.suffixes()
        self.i += 1
        return self.symbol(c)

    def operand(self) -> str:
        """A name (with its _subscript and .attribute parts), a Greek letter, ℒ, Σ or a number."""
        c = self.peek()
        if c in GREEK:
            self.i += 1
            return f"\\{GREEK[c]} "
        if c in SYMBOLS and not c.isascii() and c != "√":
            self.i += 1
            return SYMBOLS[c] + " "
        if c.isdigit():
            m = _NUMBER.match(self.s, self.i)
            self.i = m.end()
            return m.group(0)
        m = _NAME.match(self.s, self.i)
        if not m:
            self.i += 1
            return self.symbol(c)
        self.i = m.end()
        name, parts = m.group(0), []
        while (sub := _SUFFIX_SUB.match(self.s, self.i)) and self.s[sub.end():sub.end() + 1] != "{":
            parts.append(sub.group(1))
            self.i = sub.end()
        call = self.peek() == "("
        if parts and name != "grad" and any(len(p) > 2 and not p.isdigit() for p in parts):
            whole = "\\_".join([name, *parts])                      # keep_dim, conv2d_kernel_grad: a name
            return (rf"\operatorname{{{whole}}}" if call else rf"\mathrm{{{whole}}}") + self.attribute()
        text = _name(name, call)
        if parts:                                                    # out_ij, grad_x_j -> grad_{x_j}
            sub = _name(parts[-1], False)
            if self.peek() in SUBSCRIPTS and self.peek():            # grad_xₖ -> grad_{x_k}
                sub += self.suffixes()
            for p in reversed(parts[:-1]):
                sub = f"{_name(p, False)}_{{{sub}}}"
            text = f"{text}_{{{sub}}}"
        return text + self.attribute()

    def attribute(self) -> str:
        if self.peek() == "." and self.peek(1).isalpha():
            self.i += 1
            m = _NAME.match(self.s, self.i)
            self.i = m.end()
            return rf".\mathrm{{{m.group(0)}}}" + self.attribute()
        return ""

    def suffixes(self) -> str:
        """What may follow an operand: ^power, _{sub}, Unicode sub/superscripts, ', ᵀ."""
        out = []
        while True:
            c = self.peek()
            if c in SUBSCRIPTS:
                j = self.i
                while self.peek() in SUBSCRIPTS and self.peek():
                    self.i += 1
                out.append("_{" + "".join(SUBSCRIPTS[ch] for ch in self.s[j:self.i]) + "}")
            elif c in SUPERSCRIPTS:
                j = self.i
                while self.peek() in SUPERSCRIPTS and self.peek():
                    self.i += 1
                out.append("^{" + " ".join(SUPERSCRIPTS[ch] for ch in self.s[j:self.i]) + "}")
            elif c == "'":
                self.i += 1
                out.append("'")
            elif c in "^_" and self.peek(1) == "{":
                self.i += 2
                inner = self.run("}")
                self.i += 1
                out.append(f"{c}{{{inner}}}")
            elif c == "^" and self.peek(1) == "(":
                self.i += 2
                inner = self.run(")")
                self.i += 1
                out.append(f"^{{{inner}}}")
            elif c == "^" and self.peek(1):
                self.i += 1
                sign = ""
                if self.peek() in "-−+":
                    sign = "-" if self.peek() in "-−" else "+"
                    self.i += 1
                out.append(f"^{{{sign}{self.operand()}}}")
            elif c == "_" and self.peek(1) and (self.peek(1).isalnum()):
                self.i += 1
                m = re.compile(r"[A-Za-z0-9]+").match(self.s, self.i)
                self.i = m.end()
                out.append(f"_{{{m.group(0)}}}")
            else:
                return "".join(out)

    def symbol(self, c: str) -> str:
        if c in SYMBOLS:
            return SYMBOLS[c] + " "
        if c in GREEK:
            return f"\\{GREEK[c]} "
        special = {"*": r"\cdot ", "@": r"\mathbin{@} ", "|": r"\vert ", "?": r"\mathrel{?} ", "%": r"\%",
                   "#": r"\#", "&": r"\&", "$": r"\textdollar ", "~": r"\sim ", "\\": r"\backslash ", "}": r"\}",
                   ";": r";\ ", '"': "''", "^": r"\hat{}", "_": r"\_"}
        if c in special:
            return special[c]
        return c if c.isascii() else rf"\text{{{c}}}"       # unknown: visible, and the tests flag it


def _fraction(s: str, i: int) -> tuple[str, str, int] | None:
    """∂num/∂den starting at s[i] (either may hold brackets: ∂ℒ/∂k[o,c,a,b]): (num, den, end)."""
    def operand(j: int) -> int:
        depth = 0
        while j < len(s):
            c = s[j]
            if c in OPEN:
                depth += 1
            elif c in CLOSE:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and (c.isspace() or c in "/=,;·*+"):
                break
            j += 1
        return j

    mid = operand(i + 1)
    if s[mid:mid + 2] != "/∂":
        return None
    end = operand(mid + 2)
    return (s[i + 1:mid], s[mid + 2:end], end) if end > mid + 2 else None


def _name(name: str, call: bool) -> str:
    if len(name) == 1 or name.isdigit() or (len(name) == 2 and not call and name.islower()):
        return name                                                  # x, 12, ij (an index pair)
    if name in FUNCTIONS:
        return f"\\{name} "
    return rf"\operatorname{{{name}}}" if call else rf"\mathrm{{{name}}}"


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
    if set(atom) & MATH_CHARS or "^" in atom or "'" in atom or _STRONG_SUB.search(atom) or re.search(r"[\w)\]][(\[]", atom):
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
