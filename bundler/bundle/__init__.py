"""The bundle tarball: writing it (tarball), checking it (verify), reading it (inspect, diff), moving it (split).

Submodules are imported directly (``from bundler.bundle.verify import verify``); nothing is re-exported here so
that importing the writer never drags in gpg or tar-scanning code, and so `inspect` keeps meaning the module.
"""
