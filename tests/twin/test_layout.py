"""The tree keeps its design: only storage speaks SQL, imports flow one way, message
rows are read by name, and no comment points outside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

ARCHITECTURE = ROOT / "docs" / "architecture.md"
TABLE_ROW = re.compile(r"^\| `(\w+)/` \|.*\| ([^|]+) \|$", re.MULTILINE)


def allowed_imports() -> dict[str, set[str]]:
    """docs/architecture.md's table, read: each room and the rooms it may import. A
    bracket explains an entry ("model (the tokenizer ...)"); "every room" is the root."""
    table = dict(TABLE_ROW.findall(ARCHITECTURE.read_text(encoding="utf-8")))
    rooms = set(table)
    allowed = {}
    for room, cell in table.items():
        plain = re.sub(r"\([^)]*\)", "", cell).strip()
        if plain == "every room":
            allowed[room] = rooms - {room}
        elif plain == "nothing of twin":
            allowed[room] = set()
        else:
            allowed[room] = {name.strip() for name in plain.split(",")}
    return allowed


ALLOWED = allowed_imports()
ROOMS = list(ALLOWED)
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


def test_the_table_names_every_room_and_only_rooms() -> None:
    """A room added without a row (or a row for a room that went) would escape the
    import check: every top-level package of the product has its row."""
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests", "benchmarks"}
    }
    assert set(ROOMS) == packages
    for room, rooms in ALLOWED.items():
        assert rooms <= set(ROOMS) - {room}, (room, rooms)


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
def test_rooms_import_what_the_table_allows(room: str) -> None:
    allowed = ALLOWED[room] | {room}
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_rooms(path) - allowed)
        for path in product_files(room)
        if imported_rooms(path) - allowed
    }
    assert offenders == {}


def test_the_table_is_read_as_written() -> None:
    """The parser itself: a row's explanation in brackets is not a room, and a room the
    table does not let import another is caught."""
    assert ALLOWED["storage"] == set()
    assert ALLOWED["dataset"] == {"storage", "model"}
    assert ALLOWED["twin"] == set(ROOMS) - {"twin"}
    assert "trainer" not in ALLOWED["bot"]


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


def test_every_document_named_is_in_the_repository() -> None:
    """A docstring, comment or document that names a .md file names one a clone has."""
    files = [*product_files(), *sorted((ROOT / "tests").rglob("*.py"))]
    files += sorted((ROOT / "benchmarks").rglob("*.py"))
    files += [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w.-]+\.md)\b")
    missing = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        if path != Path(__file__)
        for name in named.findall(path.read_text(encoding="utf-8"))
        if not (ROOT / name).exists() and not (path.parent / name).exists()
    )
    assert missing == []


def test_each_rooms_tests_are_in_its_folder() -> None:
    """A newcomer finds a room's tests by its name: every test file is in tests/ROOM/
    (tests/benchmarks/ for the benchmarks'); the helpers they share stay in tests/."""
    folders = {*ROOMS, "benchmarks"}
    tests = ROOT / "tests"
    misplaced = [
        str(path.relative_to(tests))
        for path in tests.rglob("test_*.py")
        if path.parent.parent != tests or path.parent.name not in folders
    ]
    assert misplaced == []
    assert all((tests / room).is_dir() for room in ROOMS)
