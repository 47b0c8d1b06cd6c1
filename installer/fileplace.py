"""Putting a file in place from another copy of the same content: a temporary name beside the destination, a
hard link when nobody but us can change the source afterwards, else a copy hashed as it is written and synced;
the caller checks the digest and renames. Shared by the registry storage writer and the delta completion."""

import errno
import hashlib
import os
import stat

CHUNK = 1 << 20


def tmp_beside(path, suffix):
    """A fixed temporary name beside `path` (hidden): a run killed midway leaves at most this, and the next
    run replaces it (or removes it by its suffix)."""
    d, base = os.path.split(path)
    return os.path.join(d, "." + base + suffix)


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def may_link(st):
    """Share the source's inode only when it is owned by our user and not writable by group or others:
    otherwise the bytes could change under whoever reads the destination."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def try_link(src, tmp):
    """Hard-link src to tmp; False where links cannot be made there (another file system, not allowed)."""
    try:
        os.link(src, tmp)
        return True
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.EROFS):
            return False
        raise


def copy_hashed(src, tmp, chunk=CHUNK):
    """Copy src to tmp, synced to disk (a journal may say "done" right after), and return the sha256 (hex) of
    the bytes written."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        while True:
            block = fin.read(chunk)
            if not block:
                break
            h.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()
