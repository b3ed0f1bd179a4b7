"""Private files on disk: directories 0700, secrets 0600, certificates 0644.

Modes are set when a file is created (``os.open`` with the mode, then
``fchmod`` so a permissive or restrictive umask cannot change the outcome) —
never by a later ``chmod`` that leaves a window in which a private key is
readable. Writes go to a temporary file in the same directory and are renamed
into place, so a reader (another h2scope process, ``ssl.load_cert_chain``)
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644

_POSIX = os.name == "posix"


def create_private(path: str | os.PathLike[str], *, exclusive: bool = False) -> int:
    """Open ``path`` for writing, created or truncated, mode 0600 whatever the umask
    or the mode of a file it replaces (captures and exports hold cookies, tokens
    and bodies); a device such as ``/dev/null`` keeps its mode. Returns the file
    descriptor. Raises OSError.

    ``exclusive``: a regular file is locked (``flock``, for as long as the
    descriptor is open) before it is truncated, and a file another writer holds
    is left as it is: OSError(EBUSY) saying so. Two recorders on one capture
    would each truncate the other's and interleave their records."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    fd = _open_no_link(path, flags if exclusive else flags | os.O_TRUNC)
    if _standard_fd(path) is not None:
        return fd  # (the shell's redirect: truncated or appended to as it was told)
    try:
        regular = _POSIX and stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            os.fchmod(fd, SECRET_FILE_MODE)
        if exclusive and regular:
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OSError(errno.EBUSY, "another program is writing it (another h2scope "
                              "recording to the same file?): choose another file",
                              str(path)) from None
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_no_link(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open(path, flags, 0600)``, except through a symbolic link to a file:
    in a directory others can write (``/tmp``), a link planted under the name
    would make h2scope truncate, fill and chmod a file of the user's that the
    link points to. A link to a device or a pipe, or one of the system's
    (``/dev/stdout``), is opened as it is: neither created nor truncated. Raises
    OSError (ELOOP, saying so)."""
    fd_number = _standard_fd(path)
    if fd_number is not None:  # (the shell's own redirect: its offset and O_APPEND kept)
        return os.dup(fd_number)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags | nofollow, SECRET_FILE_MODE)
    except OSError as exc:
        if not nofollow or exc.errno != errno.ELOOP:
            raise
    refused = OSError(errno.ELOOP, "it is a symbolic link, and h2scope does not write to a "
                      "file through one (in a shared directory one could be planted to make "
                      f"it replace another file): give the file's own path, "
                      f"{os.path.realpath(path)}, if that is the one meant", str(path))
    # A link: opened without creating or truncating, to see what it leads to.
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | os.O_NOCTTY
                     | (flags & os.O_APPEND))
    except FileNotFoundError:  # (a link to nothing yet: it would create the file)
        raise refused from None
    if stat.S_ISREG(os.fstat(fd).st_mode) and not is_system_link(path):
        os.close(fd)
        raise refused
    return fd


def _standard_fd(path: str | os.PathLike[str]) -> int | None:
    """The descriptor ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` or
    ``/proc/self/fd/N`` stands for, or None. Opening the link anew would start at
    offset 0 without O_APPEND: ``>> file`` would be overwritten from its start."""
    text = os.path.abspath(path)
    named = {"/dev/stdout": 1, "/dev/stderr": 2}.get(text)
    if named is not None:
        return named
    head, _, tail = text.rpartition("/")
    if head in ("/dev/fd", "/proc/self/fd") and tail.isdigit():
        return int(tail)
    return None


def is_system_link(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is one of the system's links (``/dev/stdout``, ``/dev/fd/1``):
    written in place, never replaced or refused."""
    return os.path.islink(path) and \
        os.path.dirname(os.path.abspath(path)) in _SYSTEM_LINK_DIRS


_SYSTEM_LINK_DIRS = ("/dev", "/dev/fd", "/proc/self/fd")
"""Where links are the system's own (``/dev/stdout`` to whatever the shell
redirected it to, already truncated or appended to as the shell was told):
opened, neither created nor truncated."""


def held_by_another_writer(path: str | os.PathLike[str]) -> bool:
    """True if another writer holds ``path``'s lock (see :func:`create_private`'s
    ``exclusive``), so a recorder would refuse it rather than replace it. Only
    looks: the file is neither created nor changed, and False when it cannot be
    opened (the writer's own open then says why)."""
    if not _POSIX:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return False
    return _locked_elsewhere(fd)


def _locked_elsewhere(fd: int) -> bool:
    """Whether another open file holds an exclusive lock on ``fd``'s file (a try
    at taking it); ``fd`` is closed, and with it the lock if this took it."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def private_append(path: str | os.PathLike[str]) -> None:
    """Make ``path`` a file only its owner reads, kept as it is (a TLS key log, which
    OpenSSL appends to and would otherwise create with the umask, 0644 as a rule):
    created mode 0600 if missing, an existing regular file set to 0600. Raises
    OSError (no such directory, not writable)."""
    fd = _open_no_link(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
    try:
        if _POSIX and stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, SECRET_FILE_MODE)
    finally:
        os.close(fd)


def key_log_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the TLS key log at ``path`` cannot be written (None: it can; it is made
    private first, see :func:`private_append`)."""
    try:
        private_append(path)
    except OSError as exc:
        hint = ""
        if isinstance(exc, FileNotFoundError):
            hint = f" (create the directory {Path(path).parent} first)"
        elif isinstance(exc, IsADirectoryError):
            hint = " (give a file name, not a directory)"
        return f"cannot write the TLS key log {path}: {exc.strerror or exc}{hint}"
    return None


def ensure_private_dir(path: Path) -> Path:
    """Create *path* (and missing parents) with mode 0700 if it does not exist.

    An existing directory keeps its mode: it may be the user's own choice.
    """
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_DIR_MODE)
            if _POSIX:
                os.chmod(path, PRIVATE_DIR_MODE)
    return path


def write_atomic(path: Path, data: bytes, *, mode: int, replace: bool = True) -> bool:
    """Write *data* to *path* with exactly *mode*, atomically.

    With ``replace=False`` an existing file wins (and ``False`` is returned):
    two processes creating the same file at once end up agreeing on one.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        try:
            if _POSIX:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # fails with FileExistsError instead of replacing
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def loose_permissions(path: Path) -> int | None:
    """The mode of *path* if group or others can access it, else ``None``."""
    if not _POSIX:
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & 0o077 else None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on *path* (created 0600) across processes.

    Where ``fcntl`` does not exist (Windows) this only serialises nothing and
    the atomic renames above are the remaining protection.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, SECRET_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


IN_USE_FILE = ".in-use.lock"
"""In a confdir: a running proxy holds a shared lock on it, so that ``ca regenerate``
and ``ca import`` can tell the user that it still signs with the CA they replace."""


def _open_in_use(confdir: Path) -> int | None:
    """The in-use file of *confdir*, opened (created 0600); None if it cannot be."""
    try:
        return os.open(confdir / IN_USE_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                       SECRET_FILE_MODE)
    except OSError:
        return None


def hold_in_use(confdir: Path) -> int | None:
    """Take a shared lock on *confdir*'s in-use file, held while the returned
    descriptor stays open (None where locks do not exist or the file cannot be made:
    the lock only informs)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    fd = _open_in_use(confdir)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def in_use(confdir: Path) -> bool:
    """Whether a process (a running h2scope proxy) holds *confdir*'s in-use lock."""
    if not _POSIX:  # pragma: no cover
        return False
    fd = _open_in_use(confdir)
    return fd is not None and _locked_elsewhere(fd)
