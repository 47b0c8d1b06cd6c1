"""The dependency solver: libsolv (the engine inside dnf) behind a small interface.

Everything solver-specific lives here so the rest of the builder only sees Package records and
ResolveErrors written for the operator.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter, deque
from functools import cmp_to_key
from pathlib import Path
from typing import Callable

import solv

from ..errors import ResolveError
from . import solvcache
from .evr import rpmvercmp
from .package import Package

SELECT_FLAGS = (
    solv.Selection.SELECTION_NAME
    | solv.Selection.SELECTION_PROVIDES
    | solv.Selection.SELECTION_CANON
    | solv.Selection.SELECTION_DOTARCH
    | solv.Selection.SELECTION_REL
    | solv.Selection.SELECTION_GLOB
    | solv.Selection.SELECTION_FILELIST
)


def split_evr(evr: str) -> tuple[int, str, str]:
    epoch, _, vr = evr.rpartition(":")
    version, _, release = vr.partition("-")
    return int(epoch or 0), version, release


def nevra_of(s: solv.XSolvable) -> str:
    e, v, r = split_evr(s.evr)
    return f"{s.name}-{e}:{v}-{r}.{s.arch}"


class Solver:
    """A libsolv pool for one target architecture; repos are added, then one job solves all requests."""

    def __init__(self, arch: str):
        self.arch = arch
        self.pool = solv.Pool()
        self.pool.setdisttype(solv.Pool.DISTTYPE_RPM)
        self.pool.setarch(arch)
        self.repos: dict[str, solv.Repo] = {}
        self.media: set[str] = set()
        self.warnings: list[str] = []  # set by solve(): newest candidates passed over (best=False)
        self.sources: dict[str, list[Path]] = {}  # repo -> metadata files loaded into it (names its .solv)
        self._unsaved: dict[str, Path] = {}  # repo -> its .solv, to write once file provides are added
        self._data: dict[str, Callable[[], Path]] = {}  # repo -> its primary file, to parse when there is no .solv
        self._arches: dict[str, tuple[int, dict] | None] = {}  # repo -> (first id, solvcache arch index)
        self._dirty = True  # repos changed since whatprovides was last built
        self._restricted = False  # some solvables are disabled on the pool

    def add_repo(self, name: str, primary: Path, *, on_media: bool, data: Callable[[], Path] | None = None) -> None:
        """Load a repo from its .solv cache, else parse primary XML: `data()` (gzip'd or not), default `primary`.

        `primary` is where the decompressed primary XML lives or would live: it names the .solv."""
        repo = self.pool.add_repo(name)
        start = len(self.pool.solvables)  # a loaded repo's solvables are one block at the end of the pool
        cached = solvcache.solv_path(primary)
        self._data[name] = data or (lambda: primary)
        if not solvcache.load(repo, cached):
            self._load(repo, self._primary(name), None)
            self._unsaved[name] = cached
        self.repos[name] = repo
        self.sources[name] = [primary]
        self._arches[name] = self._arch_index(repo, start, cached)
        self._dirty = True
        if on_media:
            self.media.add(name)

    def add_filelists(self, name: str, filelists: Path) -> None:
        """Extend already-loaded solvables with their full file lists (for file deps not in primary)."""
        self._save()  # the primary-only .solv, before its repo is freed
        self.sources[name].append(filelists)
        cached = solvcache.solv_path(*self.sources[name])
        # A fresh repo in place of the primary-only one: whatprovides must not point at freed solvables.
        self.repos[name].free(True)
        self.pool.createwhatprovides()
        repo = self.repos[name] = self.pool.add_repo(name)
        start = len(self.pool.solvables)
        if not solvcache.load(repo, cached):
            self._load(repo, self._primary(name), None)
            self._load(repo, filelists, "FL")
            self._unsaved[name] = cached
        self._arches[name] = self._arch_index(repo, start, cached)
        self._dirty = True

    def _save(self) -> None:
        """Write the .solv of repos parsed from XML; after addfileprovides, so the file provides it found are in
        the .solv and a warm run does not search the file lists for them again."""
        for name, cached in self._unsaved.items():
            solvcache.save(self.repos[name], cached)
        self._unsaved.clear()

    def _primary(self, name: str) -> Path:
        """The primary file to parse for repo `name` (fetched on first use only: a warm plan reads the .solv)."""
        got = self._data[name]()
        self._data[name] = lambda: got
        return got

    @staticmethod
    def _arch_index(repo: solv.Repo, start: int, cached: Path) -> tuple[int, dict] | None:
        """(first solvable id, arch index) of a just-loaded repo: saved beside its .solv, so a warm plan knows
        which solvables are of a foreign arch without touching each one from Python. None: ids not one block."""
        n = repo.nsolvables
        pool = repo.pool
        if len(pool.solvables) != start + n or (n and getattr(pool.id2solvable(start).repo, "id", None) != repo.id):
            return None
        index = solvcache.load_arches(cached, n)
        if index is not None:
            return start, index
        lookup, key = pool.lookup_id, solv.SOLVABLE_ARCH  # ids, no XSolvable objects: this is the cold path's pass
        arches = [lookup(sid, key) for sid in range(start, start + n)]
        counts = Counter(arches)
        main = counts.most_common(1)[0][0] if counts else 0
        index = {"n": n, "main": pool.id2str(main) if main else "",
                 "other": {pool.id2str(a): [o for o, x in enumerate(arches) if x == a] for a in counts if a != main}}
        solvcache.save_arches(index, cached)
        return start, index

    @staticmethod
    def _load(repo: solv.Repo, path: Path, language: str | None) -> None:
        """Parse one metadata file into repo; gzip'd XML is read as it is (libsolv inflates it while parsing)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            # xfopen_fd dups the descriptor; the name only tells it the compression
            f = solv.xfopen_fd(f"{path.name}.gz", fd) if os.pread(fd, 2, 0) == b"\x1f\x8b" else solv.xfopen(str(path))
        finally:
            os.close(fd)
        if not f:
            raise ResolveError(f"cannot open repo metadata {path}")
        try:
            if language:
                ok = repo.add_rpmmd(f, language, solv.Repo.REPO_EXTEND_SOLVABLES)
            else:
                ok = repo.add_rpmmd(f, None, 0)
        finally:
            f.close()
        if not ok:
            raise ResolveError(f"repo '{repo.name}': metadata {path} could not be parsed: {repo.pool.errstr}")

    def file_deps_unprovided(self) -> bool:
        """True when some file dependency has no provider in primary data (then filelists are needed).

        libsolv lists the file dependencies itself (addfileprovides_queue), so only those are looked at."""
        file_deps = self.pool.addfileprovides_queue()
        self._save()
        self.pool.createwhatprovides()
        self._dirty = False
        return any(not self.pool.whatprovides(d) for d in file_deps)

    def _prepare(self, considered: Visible | None) -> None:
        if self._dirty:
            if self._restricted:  # createwhatprovides skips disabled solvables: reloaded ones must count
                self.pool.set_disabled_list([])
            self.pool.addfileprovides()
            self._save()
            self.pool.createwhatprovides()
            self._dirty = False
        if considered is not None:
            self.pool.set_disabled_list(sorted(considered.disabled))
            self._restricted = True

    def visible(self, hidden_nevras: set[str], modular: set[str], modular_names: set[str]) -> Visible:
        """What the solver may use: target arch + noarch, not hidden by modularity.

        Foreign arches come from each repo's arch index (no Python pass over the pool); only when modularity
        hides something are the solvables compared one by one (interned ids, NEVRAs for the names it is about)."""
        names = {m.rpartition("-")[0].rpartition("-")[0] for m in hidden_nevras} | modular_names
        if names or any(v is None for v in self._arches.values()):
            return self._visible_by_pass(hidden_nevras, modular, modular_names, names)
        ok = {self.arch, "noarch"}
        disabled: set[int] = set()
        for start, index in (v for v in self._arches.values() if v is not None):
            for arch, offsets in index["other"].items():
                if arch not in ok:
                    disabled.update(start + o for o in offsets)
            if index["main"] not in ok and index["n"]:
                others = {o for offsets in index["other"].values() for o in offsets}
                disabled.update(start + o for o in range(index["n"]) if o not in others)
        return Visible(disabled)

    def _visible_by_pass(self, hidden_nevras: set[str], modular: set[str], modular_names: set[str],
                         names: set[str]) -> Visible:
        arch_ids = {self.pool.str2id(self.arch), self.pool.str2id("noarch")}
        name_ids = {self.pool.str2id(n) for n in names}
        disabled = set()
        for s in self.pool.solvables_iter():
            if s.archid not in arch_ids:
                disabled.add(s.id)
            elif s.nameid in name_ids:
                key = nevra_of(s)
                if key in hidden_nevras or (s.name in modular_names and key not in modular):
                    disabled.add(s.id)  # hidden, or a non-modular twin of an active stream's package
        return Visible(disabled)

    def solve(
        self,
        requests: list[str],
        *,
        prefer_media: bool,
        considered: Visible,
        best: bool = True,
    ) -> list[Package]:
        """Solve all requests in one job; return every package of the closure (media ones flagged).

        Under the newest policy each request must get its newest candidate, as dnf with best=True (EL's default)
        insists; with best=False an older one is taken and the reason is left in self.warnings.
        """
        for name, repo in self.repos.items():
            media = name in self.media
            # media policy: any dependency the media can satisfy is taken from the media (repo priority);
            # newest policy: all repos equal, like dnf; identical NEVRAs are still taken from the media.
            repo.priority = 1 if (prefer_media and media) else 0
            repo.subpriority = 1 if media else 0
        self._prepare(considered)
        allowed = considered
        searched = ", ".join(self.repos)
        self.warnings = []
        obsoleters = self._obsoleters()
        candidates: list[list[solv.XSolvable]] = []
        for spec in requests:
            sel = self.pool.select(spec, SELECT_FLAGS)
            solvables = [s for s in sel.solvables() if s.id in allowed]
            if not solvables:
                raise ResolveError(self._explain_missing(spec, sel, searched, allowed))
            if not prefer_media and _just_name(spec):
                # dnf installs the package that obsoletes a requested name instead of the obsoleted one.
                ids = {s.id for s in solvables}
                for s in list(solvables):
                    for o in obsoleters(s):
                        if o.id in allowed and o.id not in ids:
                            solvables.append(o)
                            ids.add(o.id)
            candidates.append(solvables)
        force_best = not prefer_media
        # The libsolv Solver must outlive its problems (they point into it): _run returns it to keep it alive.
        alive, problems, chosen = self._run(candidates, prefer_media, force_best)
        if problems and force_best:
            why = self._problem_lines(problems, requests, allowed, searched)
            alive, problems, chosen = self._run(candidates, prefer_media, False)
            if not problems:
                passed = self._passed_over(requests, candidates, chosen)
                if best or not passed:
                    raise ResolveError(self._explain_not_best(passed, why))
                self.warnings = [f"spec.solver.best is false, so '{spec}' ships the older {got}: the newest "
                                 f"candidate {newest} cannot be installed ({'; '.join(why)})"
                                 for spec, newest, got in passed]
        if problems:
            lines = self._problem_lines(problems, requests, allowed, searched)
            raise ResolveError("The requested packages cannot be installed together: " + "; ".join(lines) + ". Add "
                               "a repo that provides the missing dependency, or change the requested versions in "
                               "spec.packages.")
        return sorted((self._package(s) for s in chosen), key=lambda p: (p.name, p.arch, p.nevra))

    def _obsoleters(self):  # noqa: ANN202 - a closure: XSolvable -> [XSolvable]
        """What obsoletes a solvable, from one pass over the pool's obsoletes in C (whatmatchessolvable per
        requested name scans the whole pool every time: seconds at 2,000 names).

        An obsoletes entry matches a package of its name whose own provides satisfy it (rpm's name+version rule).
        """
        by_name: dict[str, list[tuple[solv.XSolvable, int]]] = {}
        di = self.pool.Dataiterator(solv.SOLVABLE_OBSOLETES, None, 0)
        for d in di:
            text = self.pool.dep2str(d.id)
            if not text.startswith("("):
                by_name.setdefault(text.split(" ", 1)[0], []).append((d.solvable, d.id))

        def obsoleters(s: solv.XSolvable) -> list[solv.XSolvable]:
            return [o for o, dep in by_name.get(s.name, ()) if o.id != s.id
                    and any(p.id == s.id for p in self.pool.whatprovides(dep))]

        return obsoleters

    def _run(self, candidates: list[list[solv.XSolvable]], prefer_media: bool,
             force_best: bool) -> tuple[solv.Solver, list, list[solv.XSolvable]]:
        """One libsolv run: (the solver, its problems, new solvables of the transaction)."""
        how = solv.Job.SOLVER_SOLVABLE_ONE_OF | solv.Job.SOLVER_INSTALL
        if force_best:
            how |= solv.Job.SOLVER_FORCEBEST  # what dnf adds to every install job when best=True
        jobs = [self.pool.Job(how, self.pool.towhatprovides([s.id for s in c])) for c in candidates]
        solver = self.pool.Solver()
        solver.set_flag(solv.Solver.SOLVER_FLAG_ALLOW_VENDORCHANGE, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_BEST_OBEY_POLICY, 1)
        if prefer_media:
            # Minimal closure: weak dependencies are optional on the hosts, so they are not shipped.
            solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED, 1)
        problems = solver.solve(jobs)
        return solver, problems, ([] if problems else solver.transaction().newsolvables())

    @staticmethod
    def _passed_over(requests: list[str], candidates: list[list[solv.XSolvable]],
                     chosen: list[solv.XSolvable]) -> list[tuple[str, solv.XSolvable, solv.XSolvable]]:
        """(request, its newest candidate, the older one the solver took instead) for each such request."""
        ids = {s.id for s in chosen}
        out = []
        for spec, cands in zip(requests, candidates):
            got = next((s for s in cands if s.id in ids), None)
            if got is None:
                continue
            newest = max((s for s in cands if s.name == got.name), key=_EvrKey)
            if newest.evrcmp(got) > 0:
                out.append((spec, newest, got))
        return out

    @staticmethod
    def _explain_not_best(passed: list[tuple[str, solv.XSolvable, solv.XSolvable]], why: list[str]) -> str:
        what = "; ".join(f"the newest candidate for '{spec}' is {newest}, and it cannot be installed (the older "
                         f"{got} could)" for spec, newest, got in passed)
        return (f"spec.packages: {what or 'the newest candidates cannot be installed'}: {'; '.join(why)}. dnf "
                "refuses this too (best=True, the EL default: it does not silently install an older version). Add "
                "the repo that provides what is missing, pin the older version in spec.packages, or set "
                "spec.solver.best: false to ship the newest installable version with a warning.")

    def _package(self, s: solv.XSolvable) -> Package:
        e, v, r = split_evr(s.evr)
        loc, _ = s.lookup_location()
        chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        algo = chk.typestr() if chk else "sha256"
        return Package(
            name=s.name, epoch=e, version=v, release=r, arch=s.arch, repo=s.repo.name, location=loc,
            algo="sha1" if algo == "sha" else algo, digest=chk.hex() if chk else "",
            size=s.lookup_num(solv.SOLVABLE_DOWNLOADSIZE) or 0,
            license=s.lookup_str(solv.SOLVABLE_LICENSE) or "", on_media=s.repo.name in self.media,
        )

    def _explain_missing(self, spec: str, sel: solv.Selection, searched: str, allowed: Visible) -> str:
        others = sel.solvables()
        if others:
            why = []
            for s in others[:5]:
                if s.arch not in (self.arch, "noarch"):
                    why.append(f"{s} is built for {s.arch}, not {self.arch}")
                else:
                    why.append(f"{s} belongs to a module stream that is not active (enable it in spec.modules)")
            return (f"spec.packages: '{spec}' matches no usable package: {'; '.join(why)}. "
                    f"Searched: {searched}.")
        hint = self._hint(spec, allowed)
        if hint.endswith("(enable it in spec.modules).") or " is built for " in hint:
            return f"spec.packages: '{spec}' matches no usable package:{hint} Searched: {searched}."
        return (f"spec.packages: no repo has a package matching '{spec}' (searched: {searched}).{hint} Check the "
                "name and version, or add the repo that provides it to spec.repos.")

    def _hint(self, spec: str, allowed: Visible) -> str:
        """' Did you mean ...?' (close package names), the versions there are of a known name, or why it is hidden."""
        versions: dict[str, set[str]] = {}
        hidden: dict[str, solv.XSolvable] = {}
        for s in self.pool.solvables_iter():
            if s.id in allowed:
                versions.setdefault(s.name, set()).add(s.evr)
            else:
                hidden.setdefault(s.name, s)
        word = spec.split()[0]
        names = _name_candidates(word)
        for name in names:
            if name in versions:
                known = sorted(versions[name], key=cmp_to_key(rpmvercmp))[-8:]
                return f" {name} exists in versions {', '.join(known)}."
        for name in names:
            if name in hidden:
                s = hidden[name]
                if s.arch not in (self.arch, "noarch"):
                    return f" {s} is built for {s.arch}, not {self.arch}."
                return f" {s} belongs to a module stream that is not active (enable it in spec.modules)."
        close = difflib.get_close_matches(word, list(versions), n=3, cutoff=0.75)
        if not close and word != names[-1]:
            close = difflib.get_close_matches(names[-1], list(versions), n=3, cutoff=0.75)
        return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""

    def _problem_lines(self, problems: list, requests: list[str], allowed: Visible, searched: str) -> list[str]:
        """One operator-readable line per distinct cause (missing dependency with its chain, else libsolv's text)."""
        missing: dict[str, solv.XSolvable] = {}  # name -> newest solvable that lacks a dependency
        other: list[str] = []
        for problem in problems:
            for rule in problem.findallproblemrules():
                ri = rule.info()
                if ri.type == solv.Solver.SOLVER_RULE_PKG_NOTHING_PROVIDES_DEP:
                    s, best = ri.solvable, missing.get(ri.solvable.name)
                    if best is None or s.evrcmp(best) > 0:
                        missing[s.name] = s
                else:
                    other.append(ri.problemstr())
        lines = []
        for s in missing.values():
            chain = self._chain(s, requests, allowed)
            for dep in s.lookup_deparray(solv.SOLVABLE_REQUIRES):
                if not any(p.id in allowed for p in self.pool.whatprovides(dep)):
                    lines.append(f"{chain}{_short(s)} requires {dep}, which no repo provides (searched: {searched})")
        return list(dict.fromkeys(lines or other))

    def _chain(self, target: solv.XSolvable, requests: list[str], allowed: Visible) -> str:
        """'kubeadm-1.30.4 requires kubelet, and ' style prefix: why target is needed (shortest path)."""
        starts = []
        for spec in requests:
            starts += [s for s in self.pool.select(spec, SELECT_FLAGS).solvables() if s.id in allowed]
        if any(s.id == target.id for s in starts):
            return ""
        parent: dict[int, tuple[int, str]] = {}
        queue = deque(s.id for s in starts)
        seen = set(queue)
        while queue:
            sid = queue.popleft()
            s = self.pool.id2solvable(sid)
            for dep in s.lookup_deparray(solv.SOLVABLE_REQUIRES):
                for p in self.pool.whatprovides(dep):
                    if p.id in allowed and p.id not in seen:
                        seen.add(p.id)
                        parent[p.id] = (sid, str(dep))
                        if p.id == target.id:
                            steps = []
                            cur = p.id
                            while cur in parent:
                                prev, d = parent[cur]
                                steps.append(f"{_short(self.pool.id2solvable(prev))} requires {d}")
                                cur = prev
                            return ", and ".join(reversed(steps)) + ", and "
                        queue.append(p.id)
        return ""


class Visible:
    """The solvables a solve may use, held as the few it may not (`sid in visible` is the test)."""

    def __init__(self, disabled: set[int]) -> None:
        self.disabled = disabled

    def __contains__(self, sid: int) -> bool:
        return sid not in self.disabled


def _short(s: solv.XSolvable) -> str:
    """kubelet-1.30.4 (version without release/arch), as an operator writes it."""
    _, v, _ = split_evr(s.evr)
    return f"{s.name}-{v}"


def _just_name(spec: str) -> bool:
    return not any(c in spec for c in "<>=*?[") and not any(ch.isdigit() for ch in spec.rsplit("-", 1)[-1][:1])


def _name_candidates(word: str) -> list[str]:
    """'kubeadm-1.30.4-1.x86_64' -> the word and what is left after dropping arch / release / version suffixes."""
    out = [word]
    w = word
    for sep in (".", "-", "-"):
        head, found, tail = w.rpartition(sep)
        if found and head and (sep == "." and tail.isidentifier() or sep == "-" and tail[:1].isdigit()):
            w = head
            out.append(w)
    return out


class _EvrKey:
    """Sort key for solvables of one name: libsolv's evr order."""

    def __init__(self, s: solv.XSolvable) -> None:
        self.s = s

    def __lt__(self, other: _EvrKey) -> bool:
        return self.s.evrcmp(other.s) < 0
