"""One-off helper for the layer move (#13): move top-level definitions between modules and
rewrite every ``from X import name`` that names them. Run from the repository root."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path.cwd()
FILES = [*ROOT.glob("mailer/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py")]


def module_path(dotted: str) -> Path:
    return ROOT / (dotted.replace(".", "/") + ".py")


def cut(src_mod: str, names: list[str]) -> str:
    """Remove the top-level definitions (and assignments) of ``names`` from ``src_mod``;
    return their source, in file order, with the comments right above each."""
    path = module_path(src_mod)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    spans = []
    for node in tree.body:
        name = None
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            name = node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]
            name = t.id if isinstance(t, ast.Name) else None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        if name in names:
            start = (
                node.decorator_list[0].lineno
                if getattr(node, "decorator_list", None)
                else node.lineno
            ) - 1
            while start > 0 and lines[start - 1].lstrip().startswith("#"):
                start -= 1
            spans.append((start, node.end_lineno))
    out = []
    for start, end in sorted(spans, reverse=True):
        out.insert(0, "".join(lines[start:end]))
        del lines[start:end]
    path.write_text(re.sub(r"\n{4,}", "\n\n\n", "".join(lines)))
    if len(spans) != len(names):
        sys.exit(f"{src_mod}: found {len(spans)} of {names}")
    return "\n\n".join(out)


def rewrite_imports(src_mod: str, dst_mod: str, names: set[str]) -> None:
    for path in FILES:
        text = path.read_text()
        if src_mod not in text:
            continue
        tree = ast.parse(text)
        lines = text.splitlines(keepends=True)
        edits = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == src_mod:
                moving = [a for a in node.names if a.name in names]
                if not moving:
                    continue
                staying = [a for a in node.names if a.name not in names]
                indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)

                def fmt(mod: str, aliases: list[ast.alias]) -> str:
                    parts = [a.name + (f" as {a.asname}" if a.asname else "") for a in aliases]
                    return f"{indent}from {mod} import {', '.join(parts)}\n"

                new = (fmt(src_mod, staying) if staying else "") + fmt(dst_mod, moving)
                edits.append((node.lineno - 1, node.end_lineno, new))
        for start, end, new in sorted(edits, reverse=True):
            lines[start:end] = [new]
        if edits:
            path.write_text("".join(lines))


def move(src_mod: str, dst_mod: str, names: list[str], header: str = "") -> None:
    code = cut(src_mod, names)
    dst = module_path(dst_mod)
    if dst.exists():
        dst.write_text(dst.read_text().rstrip("\n") + "\n\n\n" + code + "\n")
    else:
        dst.write_text(header + "\n\n" + code + "\n")
    rewrite_imports(src_mod, dst_mod, set(names))
