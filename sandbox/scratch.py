"""Emptying a directory that untrusted code filled: in bounded stack depth and time, whatever
it left there (deep trees, many files, odd names, read-only modes, symlinks); and resetting
what it set on the directory itself (`reset_dir`).

`shutil.rmtree` recurses once per level (a tree 2,000 levels deep exhausts Python's recursion
limit) and walks by path (deeper trees exceed PATH_MAX). This flattens instead: a non-empty
subdirectory's entries are renamed up into the directory being emptied, one level at a time,
through directory file descriptors, so depth costs nothing and every entry is touched a
bounded number of times.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import stat
import struct

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clear_dir(path: str, max_entries: int = 1_000_000) -> bool:
    """Remove everything inside `path` (not `path` itself). True when it is empty afterwards;
    False when something could not be removed or more than `max_entries` entries were seen.
    Never raises OSError."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return False
    try:
        return _clear(fd, max_entries)
    except OSError:
        return False
    finally:
        os.close(fd)


_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS = 0x80086601, 0x40086602
_FLAGS = struct.Struct("l")
_OWNER_FLAGS = (0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x400 | 0x10000 | 0x20000 | 0x800000
                | 0x20000000)
"""Inode flags a directory's owner may set without privileges (chattr: secure deletion,
undelete, compression and its opposite, sync, nodump, noatime, dirsync, topdir, nocow, project
inherit). The others are the file system's own (extents, htree index...) or need a
capability the checks do not have (immutable, append only): left as they are."""
_OWNER_XATTRS = ("user.", "system.posix_acl_")
"""Extended attributes a file's owner may set (the others are root's or a security module's)."""


def reset_dir(path: str, mode: int) -> bool:
    """Give an emptied directory back the metadata it was made with: `mode`, no extended
    attributes or inode flags of its owner's, access and modification times at the epoch. So
    nothing a check set on the directory itself (rather than in it) reaches the next check
    that gets it; only its ctime, the time of this reset, differs. True when done; False when
    something could not be reset (then give the next check a fresh directory). Never raises
    OSError."""
    try:
        os.chmod(path, mode)  # first: a mode of 0 would stop the open below (unless root)
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return False
    try:
        for name in os.listxattr(fd):
            if name.startswith(_OWNER_XATTRS):
                os.removexattr(fd, name)
        try:
            flags = _FLAGS.unpack(fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(_FLAGS.size)))[0]
        except OSError:  # a file system without inode flags: nothing to reset
            flags = 0
        if flags & _OWNER_FLAGS:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, _FLAGS.pack(flags & ~_OWNER_FLAGS))
        os.utime(fd, ns=(0, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_tree(path: str) -> bool:
    """`clear_dir` then remove `path` itself. True when it is gone."""
    if not os.path.lexists(path):
        return True
    if os.path.isdir(path) and not os.path.islink(path):
        clear_dir(path)
        try:
            os.rmdir(path)
        except OSError:
            return False
        return True
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def _clear(fd: int, budget: int) -> bool:
    fresh = (f".flat{n}" for n in itertools.count())
    seen = 0
    while True:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        if not entries:
            return True
        for name, is_dir in entries:
            seen += 1
            if seen > budget:
                return False
            if not is_dir:
                _unlink(name, fd)
                continue
            try:
                os.rmdir(name, dir_fd=fd)
                continue
            except OSError:
                pass
            _flatten(name, fd, fresh)


def _unlink(name: str, fd: int) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass


def _flatten(name: str, parent_fd: int, fresh) -> None:
    """Move every entry of subdirectory `name` up into the parent, then remove it."""
    child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        mode = os.fstat(child).st_mode
        if stat.S_IMODE(mode) & 0o700 != 0o700:
            os.fchmod(child, 0o700)  # a read-only directory's entries cannot be moved
        with os.scandir(child) as it:
            names = [e.name for e in it]
        for entry in names:
            while True:
                target = next(fresh)
                try:
                    os.stat(target, dir_fd=parent_fd, follow_symlinks=False)
                except FileNotFoundError:
                    break
            os.rename(entry, target, src_dir_fd=child, dst_dir_fd=parent_fd)
    finally:
        os.close(child)
    os.rmdir(name, dir_fd=parent_fd)
