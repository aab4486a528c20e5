"""Atomic writes, JSON and checkpoints: the leaf every subsystem writes files through.

Writes go to a temporary file in the same folder and are renamed into place, so a run killed
mid-write keeps its previous checkpoint intact. Checkpoints load with ``weights_only=True``:
a checkpoint handed to us can hold tensors and plain values, never code to run.

Run directories are also checked and locked here: a directory that cannot be written is named
before any work starts, a failed write names its path, and one process at a time holds a run
directory (``hold_run_directory``), so two runs never append to the same ``metrics.jsonl``.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stalwart.errors import CheckpointError

# The version of the dict a training checkpoint holds (``fit`` writes it, every reader checks it).
CHECKPOINT_FORMAT = 1

# The file a run directory's lock lives in. Not ``.lock``: the stages of multi-stage recipes
# hold that one (blocking, in ``stalwart.recipes.stage``) while ``fit`` holds this one inside.
LOCK_FILE = ".run.lock"


def cannot_write(path: Path, error: OSError) -> CheckpointError:
    """The one-line error for an ``OSError`` raised while writing ``path``."""
    reason = error.strerror or str(error)
    return CheckpointError(
        f"cannot write {path}: {reason}; free the space or fix the permissions of that folder, "
        "or choose another output directory (--out)"
    )


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(handle)`` on a temporary file, then rename it to ``path``.

    Raises:
        CheckpointError: the file cannot be written (permissions, read-only or full disk).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not a `with` block: the file must be closed before the rename, yet removed on failure.
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=path.parent, prefix=f".{path.name}.", delete=False
        )
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # Temporary files are created private (0600); give the result the usual permissions.
        os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, path)
    except BaseException as error:
        Path(handle.name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def append_line(path: Path, line: str) -> None:
    """Append one line to ``path`` and flush it to disk (a record that must survive a crash).

    Raises:
        CheckpointError: the file cannot be written.
    """
    try:
        with open(path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise cannot_write(path, error) from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file that stalwart appended to with ``append_line``.

    A final fragment without its newline is a line a crash cut short and is dropped; any
    complete line that is not one JSON object (text edited by hand, bytes that are not UTF-8)
    means someone else changed the file, and is refused.

    Raises:
        CheckpointError: the file cannot be read, or holds a line stalwart did not write.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
    *lines, _cut_short = data.split(b"\n")
    records = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problem = "holds bytes that are not UTF-8 text"
        except json.JSONDecodeError:
            problem = f"is not a JSON record: {raw[:60].decode('utf-8', 'replace')!r}"
        else:
            if isinstance(record, dict):
                records.append(record)
                continue
            problem = f"holds a {type(record).__name__}, not a record"
        raise CheckpointError(
            f"{path} line {number} {problem}: the metrics were edited after stalwart wrote "
            f"them. Restore or remove that line, or delete {path.parent} to start the run over"
        )
    return records


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors and plain values) atomically."""
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint saved by ``save_checkpoint``.

    The message says what is wrong with the file; callers that know what the file belongs to
    (a run, a stage) add what to do about it.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or holds something other
            than tensors and plain values.
    """
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        # Only the first sentence: torch goes on to suggest weights_only=False, which would
        # let the file run code.
        detail = str(error).strip().split(". ")[0].split("\n")[0][:160]
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {detail or 'empty'}); "
            "it is corrupt or not a stalwart checkpoint"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def load_state(module: torch.nn.Module, state: dict[str, Any], what: str, path: Path) -> None:
    """``module.load_state_dict(state)``, with a clear error when the two do not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as error:
        first = str(error).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} does not match this {what}: {' '.join(first)[:300]}. "
            "Was it written for another model or config?"
        ) from None


def check_writable_directory(
    path: Path, contents: Iterable[str] = (), what: str = "run directory"
) -> None:
    """Raise a one-line error unless ``path`` is (or can be created as) a writable directory.

    Args:
        path: the directory.
        contents: names of entries inside ``path`` that are changed in place if they exist
            (a file appended to, a folder written into); each must be writable too.
        what: what the directory is, for the message.

    Raises:
        CheckpointError: ``path`` or an ancestor is a file, or the first existing one of them
            cannot be written (read-only file system, immutable, another user's).
    """
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        if existing == path:
            raise CheckpointError(f"{what} {path} is a file, not a directory; choose another --out")
        raise CheckpointError(
            f"cannot create {what} {path}: {existing} is a file, not a directory; "
            "choose another --out"
        )
    if existing != path:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise CheckpointError(
                f"cannot create {what} {path}: {existing} cannot be written "
                f"({_why_not_writable(existing)}); choose another --out"
            )
        return
    for entry in (path, *(path / name for name in contents)):
        if entry.exists() and not os.access(entry, os.W_OK | (os.X_OK if entry.is_dir() else 0)):
            raise CheckpointError(
                f"{what} {path} cannot be written: {entry} is {_why_not_writable(entry)}; "
                "fix its permissions or choose another --out"
            )


_IMMUTABLE = 0x10  # FS_IMMUTABLE_FL, read with FS_IOC_GETFLAGS (what `lsattr` shows as "i")
_GET_FLAGS = 0x80086601


def _why_not_writable(path: Path) -> str:
    """A best-effort reason why this process may not write ``path``."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "on a read-only file system"
    except OSError:
        pass
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            flags = bytearray(8)
            fcntl.ioctl(descriptor, _GET_FLAGS, flags)
            if int.from_bytes(flags[:4], "little") & _IMMUTABLE:
                return "immutable (chattr +i)"
        finally:
            os.close(descriptor)
    except OSError:
        pass
    try:
        info = path.stat()
        return (
            f"not writable by this user (mode {stat.filemode(info.st_mode)}, owner uid "
            f"{info.st_uid}, this process runs as uid {os.geteuid()})"
        )
    except OSError as error:
        return f"not accessible ({error.strerror})"


@dataclass
class _Hold:
    descriptor: int
    count: int


# Held locks by (directory, thread). Each thread opens its own descriptor, and flock excludes
# descriptors from one another, so two threads exclude each other as two processes do.
_holds: dict[tuple[str, int], _Hold] = {}
_holds_guard = threading.Lock()


@contextmanager
def hold_run_directory(directory: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of a run directory (creating it) while the block runs.

    The lock is an ``flock`` on ``directory/.run.lock``, so the system releases it when the
    process dies: a run killed with SIGKILL can be resumed at once. The holder writes its PID
    into the file, so the refusal can name it. Within one thread the lock is re-entrant
    (``stalwart run`` holds it and the ``fit`` calls inside take it again); another thread is
    excluded as another process is.

    Args:
        directory: the run directory.
        wait: block until the holder lets go (``fit`` on a directory that others may be
            reading); otherwise refuse at once (``stalwart run``).

    Raises:
        CheckpointError: another process (or thread) holds the directory and ``wait`` is
            false, or the directory cannot be created or written.
    """
    directory = Path(directory)
    key = (os.path.realpath(directory), threading.get_ident())
    with _holds_guard:
        hold = _holds.get(key)
        if hold is not None:
            hold.count += 1
    if hold is None:
        hold = _Hold(_acquire(directory, wait), 1)
        with _holds_guard:
            _holds[key] = hold
    try:
        yield
    finally:
        with _holds_guard:
            hold.count -= 1
            if hold.count == 0:
                del _holds[key]
                os.close(hold.descriptor)  # closing the last descriptor releases the flock


def _acquire(directory: Path, wait: bool) -> int:
    lock = directory / LOCK_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(
            f"cannot create run directory {directory}: {error.strerror or error}; "
            "choose another --out"
        ) from None
    while True:
        try:
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise cannot_write(lock, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            # The PID is the first line: a holder that did not truncate may leave a longer
            # PID's tail behind it.
            written = os.pread(descriptor, 32, 0).decode(errors="replace").split()
            holder = written[0] if written else "unknown"
            os.close(descriptor)
            raise CheckpointError(
                f"{directory} is in use by another stalwart run (PID {holder}); wait for it to "
                "finish or stop it, or choose another --out"
            ) from None
        # The holder before us may have removed the file (a run that failed before its first
        # epoch cleans up): then we locked an orphan and must lock the file now at that path.
        try:
            same = os.fstat(descriptor).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    except OSError as error:
        os.close(descriptor)
        raise cannot_write(lock, error) from None
    return descriptor
