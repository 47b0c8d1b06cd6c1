"""Day-2 commands beyond the built-in ones (install, plan, status, reset, add-node, remove-node): one module
each in this package, found by listing it, so a new command is one file (its help, its arguments and what it
runs) and the argument parser and top-level error handling stay shared.

A command module defines:
    COMMAND = "upgrade"            the word typed after ./install.py
    DESCRIPTION = "..."            its --help text
    PLAN = True                    `./install.py plan COMMAND ...` is its dry run (run() gets args.plan True)
    CHECKS_BUNDLE = True           the bundle is checked against SHA256SUMS before anything else
    LOCKS = True                   it changes hosts: --abort is offered (the command takes installer.lock itself)
    READ_ONLY_ACTIONS = ("check",) optional: sub-actions (the word after COMMAND) that change nothing; install.py's
                                   sh preamble reads LOCKS and this to decide whether a host without python3 gets
                                   it installed (only commands that change hosts do): keep both on one line each
    def add_arguments(parser, dry_run): ...
    def run(args): ...             returns the exit code; raises InstallerError for a clear one-paragraph error
Modules are imported only when listed for --help or run: keep their top level cheap (stdlib, no host access).
"""

import importlib
import os
import pkgutil

_CACHE = {}


def available():
    """{command word: module} of every command module in this package (sorted by word)."""
    if not _CACHE:
        here = os.path.dirname(os.path.abspath(__file__))
        found = {}
        for info in pkgutil.iter_modules([here]):
            if info.name.startswith("_"):
                continue
            mod = importlib.import_module("%s.%s" % (__name__, info.name))
            word = getattr(mod, "COMMAND", None)
            if word:
                found[word] = mod
        _CACHE.update(sorted(found.items()))
    return dict(_CACHE)


def get(word):
    return available().get(word)
