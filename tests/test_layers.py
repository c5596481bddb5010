"""The package's layers, checked from the source: what each layer may import (#13).

model is pure; adapters do I/O and know nothing of what the commands do; services compose
the two; the CLI sits on top. A lower layer never imports a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailer"
# The I/O the pure layer must never touch (the list, plus what would smuggle it in).
IO_MODULES = {"sqlalchemy", "smtplib", "imapclient", "imaplib", "os", "subprocess", "socket"}
# Which layers each layer may import (besides itself and mailer.errors).
MAY_IMPORT = {
    "model": set(),
    "adapters": {"model"},
    "services": {"model", "adapters"},
    "cli": {"model", "adapters", "services", "sandbox"},
    "sandbox": {"model", "adapters"},
    "testing": {"model", "adapters", "services"},
}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports when it runs, at any depth (a function's lazy import
    counts), as absolute names. An ``if TYPE_CHECKING:`` import is for the type checker
    only, never executed, so it does not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # "from mailer.adapters import store" imports mailer.adapters.store
            found.update(f"{module}.{a.name}" for a in node.names if module.startswith("mailer"))
    return found


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


def test_the_import_reader_sees_lazy_relative_and_package_imports(tmp_path: Path) -> None:
    """Verify imports_of finds an import inside a function, a relative one and a
    from-package one, so the rules below cannot pass by not seeing them."""
    fake = PACKAGE / "model" / "_probe_for_test.py"
    fake.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import sqlalchemy\n"
        "def f():\n    import os\n    from ..adapters import store\n    from .facts import Facts\n"
    )
    try:
        found = imports_of(fake)
    finally:
        fake.unlink()
    assert {"os", "mailer.adapters.store", "mailer.model.facts"} <= found
    assert "sqlalchemy" not in found  # a type checker's import never runs


def test_every_module_lives_in_a_layer() -> None:
    """Verify no module is left beside the layers (errors.py, the one base class, aside)."""
    flat = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py", "__main__.py", "errors.py"}
    assert flat == set()


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    """Verify each layer imports mailer's modules only from the layers it may use."""
    assert modules(layer) or layer == "testing", layer
    wrong = []
    for path in modules(layer):
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] != "mailer" or len(parts) < 2 or parts[1] in ("errors", layer):
                continue
            if parts[1] not in MAY_IMPORT[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []


def test_the_model_imports_no_io() -> None:
    """Verify the pure layer imports none of SQLAlchemy, smtplib, imapclient, os, subprocess
    (nor imaplib or socket), at any depth of the module."""
    assert len(modules("model")) > 10
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules("model")
        for name in imports_of(path)
        if name.split(".")[0] in IO_MODULES
    ]
    assert wrong == []
