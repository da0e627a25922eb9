#!/usr/bin/env python3
"""The shape of the Rust sources: library and binary files over a size limit, and module cycles.

Counts lines of code: blank lines, `//` comment lines and a trailing `#[cfg(test)]` module are
not counted; files under `tests/`, `benches/`, `examples/` and `fuzz/` are skipped. A cycle is a
set of top-level modules of one crate (`src/NAME.rs` or `src/NAME/`) that name each other through
`crate::NAME`.

    python3 scripts/source-shape.py            # report
    python3 scripts/source-shape.py --check    # exit 1 when a file is over the limit or a cycle exists
"""

import argparse
import pathlib
import re
import sys

LIMIT = 500
SKIPPED_DIRS = {"tests", "benches", "examples", "fuzz", "target"}


def code_lines(text: str) -> int:
    lines = text.splitlines()
    # A trailing test module is the last `#[cfg(test)]` followed by `mod NAME {` and running to the end.
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == "#[cfg(test)]":
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if re.match(r"^(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", following):
                lines = lines[:i]
            break
    count = 0
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("//"):
            count += 1
    return count


def crate_roots(repo: pathlib.Path):
    for manifest in sorted(repo.glob("*/*/Cargo.toml")):
        src = manifest.parent / "src"
        if src.is_dir():
            yield manifest.parent, src


TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")


def test_only_files(paths):
    """Files declared as `#[cfg(test)] mod NAME;`: unit tests kept beside the code."""
    found = set()
    for path in paths:
        if path.name in ("lib.rs", "main.rs", "mod.rs"):
            folder = path.parent
        else:
            folder = path.with_suffix("")
        for name in TEST_MODULE.findall(path.read_text(encoding="utf-8")):
            found.add(folder / f"{name}.rs")
            found.update((folder / name).rglob("*.rs"))
    return found


def source_files(src: pathlib.Path):
    paths = [
        path
        for path in sorted(src.rglob("*.rs"))
        if not SKIPPED_DIRS.intersection(path.relative_to(src).parts[:-1])
    ]
    tests = test_only_files(paths)
    return [path for path in paths if path not in tests]


def top_module(src: pathlib.Path, path: pathlib.Path):
    first = path.relative_to(src).parts[0]
    name = first[:-3] if first.endswith(".rs") else first
    if name in ("lib", "main"):
        return None
    return name


CRATE_PATH = re.compile(r"\bcrate::(\{)?")


def named_modules(text: str):
    """The top-level module names a file reaches through `crate::`, including `crate::{a, b::c}`."""
    names = set()
    for m in CRATE_PATH.finditer(text):
        if m.group(1):
            depth, start, i = 1, m.end(), m.end()
            while i < len(text) and depth:
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                i += 1
            group = text[start : i - 1]
            depth, item = 0, ""
            for ch in group + ",":
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    head = re.match(r"\s*(\w+)", item)
                    if head:
                        names.add(head.group(1))
                    item = ""
                else:
                    item += ch
        else:
            head = re.match(r"(\w+)", text[m.end() :])
            if head:
                names.add(head.group(1))
    return names


def strongly_connected(graph):
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when anything is reported")
    parser.add_argument("--limit", type=int, default=LIMIT)
    args = parser.parse_args()
    repo = pathlib.Path(__file__).resolve().parent.parent

    large, cycles = [], []
    for crate, src in crate_roots(repo):
        graph = {}
        modules = {p.name[:-3] if p.name.endswith(".rs") else p.name for p in src.iterdir()}
        modules -= {"lib", "main"}
        for path in source_files(src):
            text = path.read_text(encoding="utf-8")
            lines = code_lines(text)
            if lines > args.limit:
                large.append((lines, path.relative_to(repo)))
            module = top_module(src, path)
            if module is None:
                continue
            graph.setdefault(module, set()).update(
                n for n in named_modules(text) if n != module and n in modules
            )
        for component in strongly_connected(graph):
            cycles.append((crate.relative_to(repo), component))

    print(f"files over {args.limit} lines of code: {len(large)}")
    for lines, path in sorted(large, reverse=True):
        print(f"  {lines:5}  {path}")
    print(f"module cycles: {len(cycles)}")
    for crate, component in cycles:
        print(f"  {crate}: {' <-> '.join(component)}")
    if args.check and (large or cycles):
        sys.exit(1)


if __name__ == "__main__":
    main()
