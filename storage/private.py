"""The data folder is its owner's alone: private chats, the model trained on them and
the userbot's session live there. Folders 0700 and files 0600, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700. An existing folder is the user's,
    not twin's (a home folder, a shared one): it is left as it is, with a warning if
    others may enter it."""
    path = Path(path)
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        return path
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "%s can be read by others (%o): twin's files in it are private (0600), but "
            "their names are not; chmod 700 it if that matters",
            path,
            mode,
        )
    return path


def tighten_dir(path: Path) -> Path:
    """Make twin's own data folder 0700 again if it was loosened, with a warning."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700 | 0o700)
        log.warning("%s was readable by others (%o): now 0700", path, mode)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty as 0600 if it is missing; make an existing one 0600."""
    path = Path(path)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    return path
