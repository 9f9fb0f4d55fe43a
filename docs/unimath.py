"""Plain-Unicode maths -> LaTeX for the docs site (KaTeX): ``to_latex`` and the symbol tables.

The derivations in jtape's docstrings stay readable plain text in code (``∂out_i/∂a_i``, ``Σ_k``,
``b²``, ``aᵀ``, ``g · out``, ``√x``, ``⟨u, v⟩``). For the site they are typeset: this module finds
the maths in a docstring and writes it as LaTeX between ``$...$`` (inline) or ``$$...$$``
(display), which ``pymdownx.arithmatex`` hands to KaTeX.

* ``to_latex(expr)`` converts one Unicode expression (``∂ℒ/∂a_ik = Σ_j g_ij b_kj``) to LaTeX
  (``\\frac{\\partial \\mathcal{L}}{\\partial a_{ik}} = \\sum_j g_{ij} b_{kj}``); its result is ASCII.

``docs/docmath.py`` finds the maths in a docstring's prose and renders whole docstrings with it.
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
