"""Build the byte-level text corpus for the bundled ``mamba-tiny`` model.

Source: the Vim help files (``/usr/share/vim/vim90/doc/*.txt``, Vim license,
by Bram Moolenaar et al.), which are mostly plain English prose.  They are
not available on every machine, so the *output* of this script is committed
next to it and is all that training / calibration / evaluation need:

* ``train.txt`` -- training text (<= 1.5 MB)
* ``calib.txt`` -- ~16 KB held-out text for int8 calibration
* ``eval.txt``  -- ~32 KB held-out text for evaluation

``calib.txt`` and ``eval.txt`` are taken from source files that contribute
nothing to ``train.txt`` (whole-file hold-out, so no overlap).

Cleaning (deterministic): non-ASCII is transliterated (NFKD) or dropped;
code examples (blocks introduced by a trailing ``>``), tab-indented lines,
tables / column layouts (runs of 3+ spaces), ruler lines, headings marked
``~`` and ``*tag*`` anchors are removed; ``|link|`` markup is unwrapped;
wrapped lines are re-joined so that each output line is one paragraph of
prose with whitespace collapsed.  Paragraphs that do not look like prose
(too short, too few letters) are dropped.

Usage::

    python -m edgec.zoo.mamba_tiny.corpus [--src /usr/share/vim/vim90/doc]
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = Path("/usr/share/vim/vim90/doc")

TRAIN_MAX_BYTES = 1_500_000
CALIB_BYTES = 16 * 1024
EVAL_BYTES = 32 * 1024

# Whole files held out of training.  Taken in order until the byte budget
# is reached (the remainder of a file is discarded, never trained on).
EVAL_FILES = ["usr_20.txt", "usr_21.txt", "usr_22.txt", "usr_23.txt",
              "usr_24.txt", "usr_25.txt", "usr_26.txt"]
CALIB_FILES = ["usr_30.txt", "usr_31.txt", "usr_32.txt", "usr_40.txt"]

# Training files in priority order: the user manual (most prose-like) first,
# then the reference manual, then the change logs; cut at TRAIN_MAX_BYTES.
def _train_order(names: list[str]) -> list[str]:
    def key(n: str):
        if n.startswith("usr_"):
            grp = 0
        elif n.startswith("version") or n in ("todo.txt",):
            grp = 2
        else:
            grp = 1
        return (grp, n)
    return sorted(names, key=key)


_TAG = re.compile(r"(?<!\S)\*[^*\s]+\*(?!\S)")   # *anchor*
_LINK = re.compile(r"\|([^|\s]+)\|")             # |link|
_WS = re.compile(r"\s+")


def _ascii(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s if 32 <= ord(c) < 127 or c in "\t\n")


def _is_prose(p: str) -> bool:
    words = p.split()
    if len(words) < 6:
        return False
    letters = sum(c.isalpha() or c == " " for c in p)
    if letters / len(p) < 0.80:
        return False
    if not any(c.islower() for c in p):
        return False
    return p[-1] in ".!?:)\"'"


def clean(text: str) -> list[str]:
    """Return the prose paragraphs of one Vim help file, one per entry."""
    paras: list[str] = []
    cur: list[str] = []

    def flush():
        if cur:
            p = _WS.sub(" ", " ".join(cur)).strip()
            if _is_prose(p):
                paras.append(p)
            cur.clear()

    in_example = False
    lines = _ascii(text).split("\n")
    for i, line in enumerate(lines):
        if i == 0 or line.startswith("vim:"):        # header / modeline
            flush()
            continue
        if in_example:
            if line.strip() == "" or line[:1] in " \t":
                continue
            in_example = False
            if line.startswith("<"):
                line = line[1:]
                if not line.strip():
                    continue
        s = line.rstrip()
        if s.endswith(" >") or s == ">":
            in_example = True
            s = s[:-1].rstrip()
        # drop layout lines: tab-indented, deep indents, tables, rulers
        if (not s.strip() or s.startswith("\t") or s.startswith("    ")
                or "\t" in s.strip() or "   " in s.strip()
                or s.endswith(" ~") or re.fullmatch(r"[\s=\-_*+|#~.]+", s)):
            flush()
            continue
        s = _TAG.sub("", s)
        s = _LINK.sub(r"\1", s)
        if not s.strip():
            flush()
            continue
        if s.startswith("   ") or s.startswith(" "):     # new-paragraph indent
            flush()
        cur.append(s.strip())
    flush()
    return paras


def _take(paras: list[str], budget: int) -> str:
    out, n = [], 0
    for p in paras:
        b = len(p) + 1
        if n + b > budget:
            break
        out.append(p)
        n += b
    return "".join(x + "\n" for x in out)


def build(src: Path, dst: Path = HERE) -> dict:
    names = sorted(p.name for p in src.glob("*.txt"))
    held = set(EVAL_FILES) | set(CALIB_FILES)
    missing = held - set(names)
    if missing:
        raise SystemExit(f"missing held-out source files: {sorted(missing)}")

    def paras_of(files):
        ps = []
        for n in files:
            ps.extend(clean((src / n).read_text(encoding="utf-8", errors="replace")))
        return ps

    eval_txt = _take(paras_of(EVAL_FILES), EVAL_BYTES)
    calib_txt = _take(paras_of(CALIB_FILES), CALIB_BYTES)
    train_files = [n for n in _train_order(names) if n not in held]
    train_txt = _take(paras_of(train_files), TRAIN_MAX_BYTES)

    for name, txt in (("train.txt", train_txt), ("calib.txt", calib_txt),
                      ("eval.txt", eval_txt)):
        (dst / name).write_bytes(txt.encode("ascii"))
    return {"train": len(train_txt), "calib": len(calib_txt), "eval": len(eval_txt)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--out", type=Path, default=HERE)
    a = ap.parse_args()
    print(build(a.src, a.out))


if __name__ == "__main__":
    main()
