#!/usr/bin/env python3
"""Checks the docs: README.md, docs/*.md and gpu/README.md.

    python3 scripts/check_docs.py

- README.md has at most 200 lines (issue 21);
- every relative link ([text](path) or [text](path#heading)) in them points to an existing file or
  folder, and a #heading to a heading of the linked Markdown page;
- every `bench/...` file named in backticks exists;
- README.md links every page of docs/;
- every benchmark table is what scripts/bench_tables.py generates from bench/ (its --check).

Prints each problem and exits 1 if there is any. Standard library only.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import bench_tables  # noqa: E402

README_MAX_LINES = 200
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
BENCH_NAME = re.compile(r"`(bench/[A-Za-z0-9_.\-/]+)`")


def strip_code(text):
    """The text with fenced code blocks and inline code spans blanked (links there are not links)."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else re.sub(r"`[^`]*`", "``", line))
    return "\n".join(out)


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    found, fenced = set(), False
    seen = {}
    with open(path) as f:
        for line in f:
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
    return found


def doc_files():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "gpu", "README.md")]
    docs = os.path.join(ROOT, "docs")
    if os.path.isdir(docs):
        files += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    return files


def main():
    problems = []
    with open(os.path.join(ROOT, "README.md")) as f:
        n = sum(1 for _ in f)
    if n > README_MAX_LINES:
        problems.append(f"README.md: {n} lines, at most {README_MAX_LINES} allowed (move text into docs/)")

    links = 0
    for path in doc_files():
        rel = os.path.relpath(path, ROOT)
        with open(path) as f:
            text = f.read()
        plain = strip_code(text)
        for lineno, line in enumerate(plain.split("\n"), 1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                    continue
                links += 1
                file_part, _, anchor = target.partition("#")
                dest = path if not file_part else os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if not os.path.exists(dest):
                    problems.append(f"{rel}:{lineno}: link to '{target}': {os.path.relpath(dest, ROOT)} does not exist")
                    continue
                if anchor and dest.endswith(".md") and anchor not in anchors(dest):
                    problems.append(f"{rel}:{lineno}: link to '{target}': no heading '#{anchor}' in "
                                    f"{os.path.relpath(dest, ROOT)}")
        for lineno, line in enumerate(text.split("\n"), 1):
            for name in BENCH_NAME.findall(line):
                if not os.path.exists(os.path.join(ROOT, name)):
                    problems.append(f"{rel}:{lineno}: names `{name}`, which does not exist")

    # README.md's "Documentation" list links every page of docs/
    with open(os.path.join(ROOT, "README.md")) as f:
        readme_links = {os.path.normpath(t.partition("#")[0]) for t in LINK.findall(strip_code(f.read()))}
    for page in doc_files()[2:]:
        rel = os.path.relpath(page, ROOT)
        if rel not in readme_links:
            problems.append(f"README.md: links no '{rel}' (the Documentation list should link every docs page)")

    stale = bench_tables.check(verbose=False)
    for p in problems:
        print(p)
    if problems or stale:
        print(f"check_docs: {len(problems) + stale} problem(s)")
        return 1
    print(f"check_docs: README.md {n} lines (<= {README_MAX_LINES}); {links} relative links in "
          f"{len(doc_files())} pages resolve; benchmark tables up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
