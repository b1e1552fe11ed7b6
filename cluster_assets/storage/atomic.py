"""Atomic files and folders, temporaries that name their writer, and cleaning up after dead writers.

A writer fills a temporary sibling ``.<name>.tmp~<host>~<pid>~<start>~<random>`` and renames it
onto ``<name>`` when it is complete, so a name that exists holds a whole file or folder.  The
temporary's name says which process made it (host, pid and the process's start time, so a
reused pid is not mistaken for the writer): :func:`clean_stale` removes the temporaries of
writers that are gone and never those of a live one.  Folders and files follow the umask.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = socket.gethostname()
#: Kinds of owned temporaries: ``tmp`` (being written) and ``trash`` (being deleted).
KINDS = ("tmp", "trash")
_SEP = "~"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if it cannot be read."""
    fields = _stat(pid)
    return fields[19] if fields else None


def owner_tag(pid: int | None = None) -> str:
    """``host~pid~start`` of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return _SEP.join((HOST, str(pid), process_start(pid) or "0"))


def owner_alive(tag: str) -> bool | None:
    """Whether the process named by an :func:`owner_tag` runs; None when that cannot be told
    (another host).  A process that exists counts as alive unless its start time is known and
    differs (its pid was reused)."""
    try:
        host, pid_text, start = tag.split(_SEP)[:3]
        pid = int(pid_text)
    except ValueError:
        return None
    if host != HOST:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    fields = _stat(pid)
    if fields is None:  # no /proc (not Linux), or hidden: it exists, so it counts as alive
        return True
    if fields[0] == "Z":  # killed, not yet reaped by its parent
        return False
    return start == "0" or fields[19] == start


def current_umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it the only portable way, and put it back
    os.umask(mask)
    return mask


def _follow_umask(path: Path, mode: int) -> None:
    os.chmod(path, mode & ~current_umask())


def _owned_name(final: Path, kind: str) -> str:
    return f".{final.name}.{kind}{_SEP}{owner_tag()}{_SEP}{secrets.token_hex(4)}"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_owned_name(final, "tmp"), dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _follow_umask(tmp, 0o666)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class AtomicDir:
    """Context manager: a temporary folder to fill, renamed onto ``path`` on success.

    If ``path`` appeared meanwhile (another writer of the same content-addressed folder won
    the race), the temporary is removed and ``won`` is False: the first complete folder stays.
    """

    def __init__(self, path: str | Path):
        self.final = Path(path)
        self.won = False

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.parent / _owned_name(self.final, "tmp")
        self.tmp.mkdir()
        _follow_umask(self.tmp, 0o777)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        try:
            os.rename(self.tmp, self.final)
            self.won = True
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def remove_tree(path: str | Path) -> None:
    """Remove a folder so that it disappears at once (renamed to owned trash, then deleted)."""
    path = Path(path)
    trash = path.parent / _owned_name(path, "trash")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def owned_temporaries(folder: str | Path) -> Iterator[tuple[Path, str]]:
    """(path, owner tag) of every owned temporary directly inside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if not entry.name.startswith("."):
            continue
        for kind in KINDS:
            marker = f".{kind}{_SEP}"
            if marker in entry.name:
                yield entry, entry.name.split(marker, 1)[1]
                break


def clean_stale(folder: str | Path) -> list[Path]:
    """Remove the temporaries in ``folder`` whose writer process is gone (on this host)."""
    removed = []
    for path, tag in owned_temporaries(folder):
        if owner_alive(tag) is False:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
