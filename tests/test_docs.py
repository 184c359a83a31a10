#!/usr/bin/env python3
"""The docs test (CTest `docs`): README.md and docs/*.md stay true.

  1. README.md is at most 250 lines (the front door; the rest lives in docs/).
  2. Every relative Markdown link resolves: the file exists, and an #anchor names a heading of it.
  3. Every reference `docs/PAGE.md "Section"` in the tracked sources and docs names a heading or a
     bold lead-in (**Section.**) of that page, and no stale `README "Section"` reference is left.
  4. docs/cli.md is what scripts/cli-doc.sh generates from this build's gnv.
  5. Every fenced block marked `sh runnable` exits 0, run by bash (-e -o pipefail) from the
     repository root with the build's gnv first on PATH.
Usage: test_docs.py SOURCE_DIR BUILD_DIR. Exit 0 pass, 1 fail."""
import os
import re
import subprocess
import sys

src, build = (os.path.abspath(a) for a in sys.argv[1:3])
problems = []
pages = ["README.md"] + [os.path.join("docs", p) for p in sorted(os.listdir(os.path.join(src, "docs")))
                         if p.endswith(".md")]


def read(path):
    with open(os.path.join(src, path), encoding="utf-8") as f:
        return f.read()


def slug(heading):
    # GitHub's anchors: lower case, punctuation other than - and _ dropped, spaces to -.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def outside_code(text):
    return re.sub(r"```.*?```", "", text, flags=re.S)


def headings(path):
    return [re.sub(r"`", "", m.group(1)) for m in re.finditer(r"^#{1,6} (.*)$", outside_code(read(path)), re.M)]


def bold_leads(path):
    return [m.group(1) for m in re.finditer(r"^\*\*([^*]+?)\.?\*\*", read(path), re.M)]


# 1
n = len(read("README.md").splitlines())
if n > 250:
    problems.append(f"README.md has {n} lines (at most 250: move detail into docs/)")

# 2
for page in pages:
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", outside_code(read(page))):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(os.path.join(src, file)):
            problems.append(f"{page}: link to {target}: {file} does not exist")
        elif anchor and file.endswith(".md") and anchor not in [slug(h) for h in headings(file)]:
            problems.append(f"{page}: link to {target}: no heading with anchor #{anchor} in {file}")

# 3
tracked = subprocess.run(["git", "-C", src, "ls-files"], capture_output=True, text=True).stdout.split()
if not tracked:  # not a git checkout (a source tarball): the sources as they are
    tracked = [os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs
               if "/build/" not in d + "/" and "/.git" not in d]
for path in tracked:
    if path.startswith(("fuzz/corpus/", "build/")) or path == "tests/test_docs.py" or \
            not os.path.isfile(os.path.join(src, path)):
        continue
    try:
        text = read(path)
    except UnicodeDecodeError:
        continue
    for m in re.finditer(r'README \\?"', text):
        line = text.count("\n", 0, m.start()) + 1
        problems.append(f"{path}:{line}: a README \"Section\" reference: sections moved to docs/PAGE.md \"Section\"")
    for m in re.finditer(r'docs/([\w-]+\.md)\s+(?:#\s*|//\s*)?\\?"([^"\\]+)\\?"', text):
        page, section = "docs/" + m.group(1), " ".join(m.group(2).split())
        if m.group(1) == "PAGE.md":  # the form itself, as the docs describe it
            continue
        line = text.count("\n", 0, m.start()) + 1
        if not os.path.exists(os.path.join(src, page)):
            problems.append(f"{path}:{line}: {page} does not exist")
        elif section not in headings(page) and section not in bold_leads(page):
            problems.append(f"{path}:{line}: {page} has no section \"{section}\"")

# 4
gnv = os.path.join(build, "gnv")
gen = subprocess.run(["bash", os.path.join(src, "scripts", "cli-doc.sh"), gnv], capture_output=True, text=True)
if gen.returncode != 0:
    problems.append(f"scripts/cli-doc.sh failed: {gen.stderr.strip()}")
elif gen.stdout != read("docs/cli.md"):
    problems.append("docs/cli.md differs from `scripts/cli-doc.sh` (regenerate: scripts/cli-doc.sh > docs/cli.md)")

# 5
env = dict(os.environ, PATH=build + os.pathsep + os.environ.get("PATH", ""))
ran = 0
for page in pages:
    for m in re.finditer(r"^```sh runnable\n(.*?)^```", read(page), re.S | re.M):
        ran += 1
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", m.group(1)], cwd=src, env=env, capture_output=True,
                           text=True)
        if r.returncode != 0:
            problems.append(f"{page}: runnable block exited {r.returncode}:\n{m.group(1)}{r.stdout[-800:]}{r.stderr[-800:]}")
if ran == 0:
    problems.append("no `sh runnable` block found: the docs test would check nothing")

for p in problems:
    print("FAIL:", p)
print(f"docs: {len(pages)} pages, {ran} runnable blocks, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
