"""MkDocs hook: typeset maths offline with KaTeX, served from the site itself (no CDN).

``pymdownx.arithmatex`` (generic mode) wraps each formula in ``<span class="arithmatex">\\(...\\)</span>``
or ``<div class="arithmatex">\\[...\\]</div>``; ``javascripts/katex-render.js`` renders those with
KaTeX in the reader's browser. KaTeX itself is not kept in this repository: at build time this hook
takes its ``dist`` folder from ``$JTAPE_KATEX_DIR`` when set, or installs the pinned release with npm
into ``.cache/katex/`` (once; later builds reuse it), and copies ``katex.min.js``,
``katex.min.css`` and the fonts into the built site under ``katex/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

KATEX_VERSION = "0.19.1"
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "katex"
FILES = ("katex.min.js", "katex.min.css")


def katex_dist() -> Path:
    """The folder holding katex.min.js, katex.min.css and fonts/ (installed with npm if missing)."""
    configured = os.environ.get("JTAPE_KATEX_DIR")
    dist = Path(configured) if configured else CACHE / "node_modules" / "katex" / "dist"
    if _complete(dist):
        return dist
    if configured:
        raise PluginError(f"math_assets: JTAPE_KATEX_DIR={configured} holds no KaTeX dist folder; expected "
                          f"{', '.join(FILES)} and fonts/ in it")
    npm = shutil.which("npm")
    if npm is None:
        raise PluginError("math_assets: KaTeX is needed to typeset the maths and npm is not installed; expected "
                          "npm (apt-get install npm) or JTAPE_KATEX_DIR pointing at a KaTeX dist folder")
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--prefix", str(CACHE), f"katex@{KATEX_VERSION}", "--no-save", "--no-package-lock",
           "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not _complete(dist):
        raise PluginError(f"math_assets: `{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return dist


def _complete(dist: Path) -> bool:
    return all((dist / f).is_file() for f in FILES) and (dist / "fonts").is_dir()


def on_config(config: Any) -> Any:
    """Check KaTeX is there before any page is built, and load it on every page."""
    katex_dist()
    config["extra_css"].insert(0, "katex/katex.min.css")
    config["extra_javascript"][:0] = ["katex/katex.min.js", "javascripts/katex-render.js"]
    return config


def on_post_build(config: Any) -> None:
    """Copy KaTeX's script, stylesheet and fonts into the site."""
    dist, target = katex_dist(), Path(config["site_dir"]) / "katex"
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(dist / name, target / name)
    shutil.copytree(dist / "fonts", target / "fonts", dirs_exist_ok=True)
