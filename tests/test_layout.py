"""The tree keeps its design: only storage speaks SQL, imports flow one way, message
rows are read by name, and no comment points outside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The data's path, lowest first: a room may import only rooms listed before it.
ROOMS = [
    "storage",
    "exporter",
    "model",
    "dataset",
    "memory",
    "engine",
    "trainer",
    "bot",
    "api",
    "twin",
]
SQL = re.compile(
    r"\b(SELECT\s+\S+.*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX|VIRTUAL|TRIGGER)|PRAGMA\s+\w+)\b"
)  # twin writes its SQL in capitals, and prose rarely does


def product_files(room: str | None = None) -> list[Path]:
    rooms = [room] if room else ROOMS
    return sorted(p for r in rooms for p in (ROOT / r).rglob("*.py"))


def imported_rooms(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ROOMS)


def string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_the_rooms_exist() -> None:
    for room in ROOMS:
        assert (ROOT / room / "__init__.py").is_file(), room


@pytest.mark.parametrize("room", [r for r in ROOMS if r != "storage"])
def test_only_storage_speaks_sql(room: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {text[:60]!r}"
        for path in product_files(room)
        for text in string_constants(path)
        if SQL.search(text)
    ]
    assert offenders == []


def test_the_sql_check_catches_sql() -> None:
    assert SQL.search("SELECT sender_id, COUNT(*) FROM messages WHERE chat_id = ?")
    assert SQL.search("INSERT OR IGNORE INTO messages (a) VALUES (?)")
    assert not SQL.search("Select the chats you want to import from the list")


@pytest.mark.parametrize("room", ROOMS)
def test_imports_flow_one_way(room: str) -> None:
    allowed = set(ROOMS[: ROOMS.index(room) + 1])
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_rooms(path) - allowed)
        for path in product_files(room)
        if imported_rooms(path) - allowed
    }
    assert offenders == {}


# `row[5]`, `r[10]`, `rows[-1][2]`: positional access to a row, which the named row
# types replace everywhere outside storage.
POSITIONAL = re.compile(r"\b(row|rows\[-?\d+\]|r)\[-?\d+\]")


@pytest.mark.parametrize("room", [r for r in ROOMS if r != "storage"])
def test_message_rows_are_read_by_name(room: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in product_files(room)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if POSITIONAL.search(line)
    ]
    assert offenders == []


def test_no_comment_points_outside_the_repository() -> None:
    files = [*product_files(), *sorted((ROOT / "tests").rglob("*.py"))]
    files += sorted((ROOT / "benchmarks").rglob("*.py"))
    files += [ROOT / "config.toml", ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if path != Path(__file__) and re.search(r"shared/(notes|DESIGN)", path.read_text())
    ]
    assert offenders == []
