"""The tree keeps its design: only storage speaks SQL, imports flow one way, message
rows are read by name, and no comment points outside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

ARCHITECTURE = ROOT / "docs" / "architecture.md"
TABLE_ROW = re.compile(r"^\| `([\w/]+)/` \|.*\| ([^|]+) \|$", re.MULTILINE)


def room_folders() -> dict[str, str]:
    """Each room's name and its folder, from the table's first column: a room is named
    by its folder's last part (`twin/prompt/` is the room "prompt")."""
    rows = TABLE_ROW.findall(ARCHITECTURE.read_text(encoding="utf-8"))
    return {folder.rsplit("/", 1)[-1]: folder for folder, _ in rows}


def allowed_imports() -> dict[str, set[str]]:
    """docs/architecture.md's table, read: each room and the rooms it may import. A
    bracket explains an entry ("model (the tokenizer ...)"); "every room" is the root."""
    rows = TABLE_ROW.findall(ARCHITECTURE.read_text(encoding="utf-8"))
    table = {folder.rsplit("/", 1)[-1]: cell for folder, cell in rows}
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
FOLDERS = room_folders()
# The rooms inside the twin package; the rest of it is the composition root "twin".
INSIDE_TWIN = {room for room, folder in FOLDERS.items() if folder.startswith("twin/")}
# What installing twin puts into site-packages: the design card's rooms and twin.
INSTALLED = {"storage", "exporter", "trainer", "bot", "twin"}
SQL = re.compile(
    r"\b(SELECT\s+\S+.*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX|VIRTUAL|TRIGGER)|PRAGMA\s+\w+)\b"
)  # twin writes its SQL in capitals, and prose rarely does


def product_files(room: str | None = None) -> list[Path]:
    """A room's Python files (every room's without `room`); the root's are the twin
    package's less the rooms inside it."""
    rooms = [room] if room else ROOMS
    return sorted(
        path
        for r in rooms
        for path in (ROOT / FOLDERS[r]).rglob("*.py")
        if r != "twin" or room_of(".".join(path.relative_to(ROOT).parts[:2])) == "twin"
    )


def room_of(module: str) -> str | None:
    """The room a module belongs to: `twin.prompt.text` to "prompt", `twin.cli` to the
    root "twin", `storage.rows` to "storage"; None for anything not twin's."""
    parts = module.split(".")
    if parts[0] == "twin":
        return parts[1] if len(parts) > 1 and parts[1] in INSIDE_TWIN else "twin"
    return parts[0] if parts[0] in ROOMS else None


def imported_rooms(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return {room_of(module) for module in modules} - {None}


def string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_the_table_names_every_room_and_only_rooms() -> None:
    """A room added without a row (or a row for a room that went) would escape the
    import check: every top-level package of the product, and every package inside
    twin but the CLI's commands, has its row."""
    packages = {
        str(path.parent.relative_to(ROOT))
        for path in [*ROOT.glob("*/__init__.py"), *ROOT.glob("twin/*/__init__.py")]
        if path.parent.name not in {"tests", "benchmarks", "commands"}
    }
    assert set(FOLDERS.values()) == packages
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
    assert FOLDERS["prompt"] == "twin/prompt" and FOLDERS["bot"] == "bot"


def test_modules_are_told_to_their_rooms() -> None:
    """The import check's reading of a module name: a room inside twin is its own
    room, not the root's."""
    assert room_of("twin.prompt.reply") == "prompt"
    assert room_of("twin.cli") == room_of("twin.commands.train") == room_of("twin") == "twin"
    assert room_of("storage.rows") == "storage"
    assert room_of("torch.nn") is None
    root = product_files("twin")
    assert ROOT / "twin" / "wiring.py" in root and ROOT / "twin" / "commands" / "train.py" in root
    assert not any("prompt" in path.relative_to(ROOT).parts for path in root)


def test_the_installed_names_are_the_chosen_ones() -> None:
    """Installing twin adds only storage, exporter, trainer, bot and twin to
    site-packages: a generic room name (dataset, model, engine, api) installed at the
    top would shadow another package of that name, or be shadowed by it. Read from
    the installed distribution's record, as pip left it."""
    import sys
    from importlib.metadata import distributions

    # Where it is installed, not a build's leftover egg-info in the working tree.
    elsewhere = [entry for entry in sys.path if Path(entry or ".").resolve() != ROOT]
    installed = list(distributions(name="twin", path=elsewhere))
    assert installed, "twin is not installed (make install)"
    top_level = installed[0].read_text("top_level.txt")
    assert top_level is not None, "the installed twin has no top_level.txt"
    assert set(top_level.split()) == INSTALLED


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
    folders = {*ROOMS, "benchmarks"}  # by the room's name: tests/prompt/, not tests/twin/prompt/
    tests = ROOT / "tests"
    misplaced = [
        str(path.relative_to(tests))
        for path in tests.rglob("test_*.py")
        if path.parent.parent != tests or path.parent.name not in folders
    ]
    assert misplaced == []
    assert all((tests / room).is_dir() for room in ROOMS)


# Each idea that decides what the model sees is done in one place: a second place is
# where training and serving could silently part.
ONE_PLACE = {  # what: (a use of it, the one file that may hold it)
    "style knobs": (r"(?<!def )\bwith_knobs\(", "twin/engine/style.py"),
    "facts": (r"\bget\(db, \w+\.FACTS\b", "twin/prompt/facts.py"),  # /facts over the config
    "recall scopes": (r"(?<!class )\bScope\(", "twin/memory/scopes.py"),
    "recall": (r"\.recall\(\s*\[", "twin/prompt/memory.py"),  # the call that recalls for a prompt
}


@pytest.mark.parametrize("what", ONE_PLACE)
def test_what_the_model_sees_is_decided_in_one_place(what: str) -> None:
    pattern, place = ONE_PLACE[what]
    found = {
        str(path.relative_to(ROOT))
        for path in product_files()
        if re.search(pattern, path.read_text(encoding="utf-8"))
    }
    assert found == {place}
