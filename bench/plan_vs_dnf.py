"""Benchmark: `bundler plan` vs dnf's own resolve, on a realistic 60k-package repo pair, at 1/20/200/2000 requests.

The data is generated offline: this machine's Debian package index (/var/lib/apt/lists/*_Packages.lz4, bookworm
main as the "media", bookworm-updates + security as the shipped "updates" repo) is converted to yum repodata
(Depends/Pre-Depends -> requires, `a | b` -> rich `(a or b)`, Provides, versions mapped to epoch:version-release),
so the dependency graph has real size and shape. File lists are modeled on this machine's dpkg database (each
package gets a real package's list, renamed: see file_list), so filelists.xml has a real distro's size (65 MiB gz
here, like Fedora's) and primary.xml carries the /etc and */bin/* paths createrepo_c puts there; --no-filelists
writes an empty filelists.xml instead (the data before 2026-12-01). No RPM payload exists: `plan` and a dnf resolve
read metadata only. dnf 4 always loads filelists; `plan` loads them only when a file dependency is not provided
from primary (none here).

For each request size (the first N names of a seeded shuffle of the names that can be installed together) it
times, in one run: `bundler plan --json` cold (empty cache), warm (same cache: the resolved-plan cache answers) and
"warm, updates republished" (the updates repo's primary.xml.gz and repomd.xml written again before each run: the
plan cache and that repo's .solv miss, the media's .solv loads: the libsolv path), and dnf (Debian's dnf 4,
best=True, `dnf install` resolution in an empty installroot through dnf's Python API) cold (empty dnf cache),
warm, and warm after the same republish (dnf's own miss); the warm runs of both tools interleaved; reports peak
RSS and CPU time (user + system) of each process, the spread over the runs, and whether every closure is the same
set of packages as dnf's.

    .venv/bin/python bench/plan_vs_dnf.py [--sizes 1,20,200,2000] [--runs 3] [--no-filelists]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import inspect
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.upstream.yumrepos import _RESOLVE_SCRIPT, _dnf_python  # noqa: E402

WORK = Path(os.environ.get("AIRGAP_BENCH_DIR", "/tmp/airgap-bench-plan"))
LISTS = Path("/var/lib/apt/lists")
SOURCES = {"media": ["*_dists_bookworm_main_binary-amd64_Packages*"],
           "updates": ["*_dists_bookworm-updates_main_binary-amd64_Packages*",
                       "*_dists_bookworm-security_main_binary-amd64_Packages*"]}
FLAGS = {"<<": "LT", "<=": "LE", "=": "EQ", ">=": "GE", ">>": "GT", "<": "LE", ">": "GE"}
OPS = {"<<": "<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">", "<": "<=", ">": ">="}
DEP = re.compile(r"^\s*([^\s(:]+)(?::\S+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?")


def read_index(pattern: str) -> str:
    files = sorted(LISTS.glob(pattern))
    if not files:
        return ""
    path = files[0]
    if path.suffix == ".lz4":
        return subprocess.run(["lz4", "-dc", str(path)], capture_output=True, check=True).stdout.decode()
    return subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True,
                          check=True).stdout.decode()


def stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            yield fields


def evr(v: str) -> tuple[str, str, str | None]:
    """Debian version -> (epoch, version, release or None); '-' is not allowed inside an rpm version."""
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    ver, sep, rel = rest.rpartition("-")
    if not sep:
        ver, rel = rest, None
    return epoch or "0", ver.replace("-", "_").replace(":", "_"), rel


def entry(name: str, op: str | None = None, version: str | None = None) -> str:
    if not op:
        return f'<rpm:entry name={quoteattr(name)}/>'
    e, v, r = evr(version or "0")
    rel = f" rel={quoteattr(r)}" if r is not None else ""
    return f'<rpm:entry name={quoteattr(name)} flags="{FLAGS[op]}" epoch="{e}" ver={quoteattr(v)}{rel}/>'


def one_dep(text: str) -> tuple[str, str | None, str | None] | None:
    m = DEP.match(text)
    return (m[1], m[2], m[3]) if m else None


def dep_entries(field: str) -> list[str]:
    out = []
    for clause in (c for c in field.split(",") if c.strip()):
        alts = [d for d in (one_dep(a) for a in clause.split("|")) if d]
        if len(alts) == 1:
            out.append(entry(*alts[0]))
        elif alts:
            rich = " or ".join(n if not op else f"{n} {OPS[op]} {':'.join(p for p in evr(v)[:2])}"
                               + (f"-{evr(v)[2]}" if evr(v)[2] else "") for n, op, v in alts)
            out.append(entry(f"({rich})"))
    return out


def package_xml(f: dict[str, str], files: list[tuple[str, bool]] = ()) -> str:
    name, arch = f["Package"], "noarch" if f.get("Architecture") == "all" else "x86_64"
    e, v, r = evr(f["Version"])
    r = r or "0"
    pkgid = hashlib.sha256(f"{name}-{f['Version']}.{arch}".encode()).hexdigest()
    desc = f.get("Description", "")
    summary, _, body = desc.partition("\n")
    size = f.get("Size", "1000")
    provides = [f'<rpm:entry name={quoteattr(name)} flags="EQ" epoch="{e}" ver={quoteattr(v)} rel={quoteattr(r)}/>']
    provides += [entry(*d) for d in (one_dep(p) for p in f.get("Provides", "").split(",") if p.strip()) if d]
    requires = dep_entries(", ".join(x for x in (f.get("Pre-Depends"), f.get("Depends")) if x))
    req = f"<rpm:requires>{''.join(requires)}</rpm:requires>" if requires else ""
    return (f'<package type="rpm"><name>{escape(name)}</name><arch>{arch}</arch>'
            f'<version epoch="{e}" ver={quoteattr(v)} rel={quoteattr(r)}/>'
            f'<checksum type="sha256" pkgid="YES">{pkgid}</checksum><summary>{escape(summary)}</summary>'
            f'<description>{escape(body)}</description><packager>Debian</packager><url></url>'
            f'<time file="0" build="0"/><size package="{size}" installed="{f.get("Installed-Size", "0")}" '
            f'archive="0"/><location href="Packages/{escape(name)}-{escape(v)}-{escape(r)}.{arch}.rpm"/>'
            f'<format><rpm:license>{escape(f.get("Section", "unknown"))}</rpm:license>'
            f'<rpm:provides>{"".join(provides)}</rpm:provides>{req}'
            + "".join(_file_xml(path, is_dir) for path, is_dir in files if PRIMARY_FILE.match(path))
            + '</format></package>\n')


# createrepo_c's rule for the files that primary.xml carries too (the rest is only in filelists.xml)
PRIMARY_FILE = re.compile(r"^(/etc/|(/usr)?/s?bin/|/usr/lib/sendmail$)")


def _file_xml(path: str, is_dir: bool) -> str:
    return f'<file type="dir">{escape(path)}</file>' if is_dir else f"<file>{escape(path)}</file>"


def real_file_lists() -> list[tuple[str, list[tuple[str, bool]]]]:
    """(package name, [(path, is directory)]) of every package installed on this machine, from dpkg's database:
    the templates of the modeled file lists (see file_list)."""
    out = []
    for lst in sorted(Path("/var/lib/dpkg/info").glob("*.list")):
        name = lst.name[:-5].split(":")[0]
        paths = [p for p in lst.read_text(errors="replace").splitlines() if p and p != "/."]
        out.append((name, [(p, os.path.isdir(p) and not os.path.islink(p)) for p in paths]))
    return out


def file_list(name: str, templates: list[tuple[str, list[tuple[str, bool]]]]) -> list[tuple[str, bool]]:
    """A package's modeled file list: a real one from this machine (its own if installed here, else one picked by
    a hash of the name), with the template's name in each path replaced by this package's name. So the count and
    shape of the lists (mean ~160 entries, directories, /usr/bin and /etc paths) are a real distro's."""
    by_name = dict(templates)
    if name in by_name:
        return by_name[name]
    tname, paths = templates[int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % len(templates)]
    return [(p.replace(tname, name), d) for p, d in paths]


def write_repo(dest: Path, pkgs: list[dict[str, str]], templates: list | None) -> None:
    """primary, filelists (modeled when templates are given, else empty) and other, gzip'd, with repomd.xml."""
    import createrepo_c as cr

    repodata = dest / "repodata"
    repodata.mkdir(parents=True)
    ns = 'xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm"'
    files = [file_list(p["Package"], templates) if templates else [] for p in pkgs]

    def filelists() -> Iterator[str]:
        yield ('<?xml version="1.0" encoding="UTF-8"?>\n<filelists xmlns="http://linux.duke.edu/metadata/filelists" '
               f'packages="{len(pkgs) if templates else 0}">\n')
        for f, fl in zip(pkgs, files) if templates else ():
            name, arch = f["Package"], "noarch" if f.get("Architecture") == "all" else "x86_64"
            e, v, r = evr(f["Version"])
            pkgid = hashlib.sha256(f"{name}-{f['Version']}.{arch}".encode()).hexdigest()
            yield (f'<package pkgid="{pkgid}" name={quoteattr(name)} arch="{arch}"><version epoch="{e}" '
                   f'ver={quoteattr(v)} rel={quoteattr(r or "0")}/>' + "".join(_file_xml(*x) for x in fl)
                   + "</package>\n")
        yield "</filelists>\n"

    docs = {
        "primary": iter([f'<?xml version="1.0" encoding="UTF-8"?>\n<metadata {ns} packages="{len(pkgs)}">\n',
                         *(package_xml(p, fl) for p, fl in zip(pkgs, files)), "</metadata>\n"]),
        "filelists": filelists(),
        "other": iter(['<?xml version="1.0" encoding="UTF-8"?>\n<otherdata xmlns="http://linux.duke.edu/metadata/'
                       'other" packages="0">\n</otherdata>\n']),
    }
    repomd = cr.Repomd()
    for kind, parts in docs.items():
        path = repodata / f"{kind}.xml.gz"
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
            for part in parts:
                fh.write(part)
        rec = cr.RepomdRecord(kind, str(path))
        rec.fill(cr.SHA256)
        rec.rename_file()
        repomd.set_record(rec)
    (repodata / "repomd.xml").write_text(repomd.xml_dump())


def make_repos(filelists: bool = True) -> Path:
    """Both repos under WORK/<key>/, generated once (in a child process, see installable_names) and keyed by
    this script, the Debian index files it converts and whether file lists are modeled."""
    lists = sorted(f for pats in SOURCES.values() for pat in pats for f in LISTS.glob(pat))
    if not lists:
        raise SystemExit(f"no Debian package index under {LISTS} (run apt-get update once)")
    stamp = GENERATOR.encode() + json.dumps([(f.name, f.stat().st_size, f.stat().st_mtime) for f in lists]
                                                     ).encode()
    root = WORK / (hashlib.sha256(stamp).hexdigest()[:12] + ("" if filelists else "-nofl"))
    if not (root / "updates" / "repodata" / "repomd.xml").exists():
        subprocess.run([sys.executable, __file__, "--generate", str(root)]
                       + ([] if filelists else ["--no-filelists"]), check=True)
    return root


def generate(root: Path, filelists: bool = True) -> None:
    templates = real_file_lists() if filelists else None
    texts = {name: "".join(read_index(p) + "\n\n" for p in pats) for name, pats in SOURCES.items()}
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=WORK))
    for name, text in texts.items():
        seen: set[tuple[str, str]] = set()
        pkgs = []
        for f in stanzas(text):
            if (f["Package"], f["Version"]) not in seen:
                seen.add((f["Package"], f["Version"]))
                pkgs.append(f)
        write_repo(tmp / name, pkgs, templates)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)


def installable_names(root: Path) -> list[str]:
    """The request pool, computed once in a child process (root/names.json): the measured processes are forked
    from this one, and a forked child's peak RSS starts at its parent's size."""
    cached = root / "names.json"
    if not cached.exists():
        subprocess.run([sys.executable, __file__, "--names-for", str(root)], check=True)
    return json.loads(cached.read_text())


def compute_names(root: Path, seed: int = 7) -> None:
    """Names (seeded shuffle) that one libsolv job installs together: weak jobs drop the ones that cannot."""
    import solv

    pool = solv.Pool()
    pool.setarch("x86_64")
    for name in ("media", "updates"):
        repo = pool.add_repo(name)
        f = solv.xfopen(str(next((root / name / "repodata").glob("*primary.xml.gz"))))
        repo.add_rpmmd(f, None, 0)
        f.close()
    pool.createwhatprovides()
    names = sorted({s.name for s in pool.solvables_iter()})
    random.Random(seed).shuffle(names)
    names = names[:3000]
    jobs = [pool.Job(solv.Job.SOLVER_SOLVABLE_NAME | solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_WEAK
                     | solv.Job.SOLVER_FORCEBEST, pool.str2id(n)) for n in names]
    solver = pool.Solver()
    solver.solve(jobs)
    got = {s.name for s in solver.transaction().newsolvables()}
    (root / "names.json").write_text(json.dumps([n for n in names if n in got]))


def timed(cmd: list[str], stdin: str | None = None) -> tuple[float, int, str, float]:
    """(seconds, peak RSS KiB, stdout, CPU seconds user+system) of one child process (files for its stdio, so
    wait4 can reap it). CPU time is the steadier figure on a shared machine: wall time also counts waiting for
    a core."""
    with tempfile.TemporaryFile("w+") as fin, tempfile.TemporaryFile("w+") as fout, \
            tempfile.TemporaryFile("w+") as ferr:
        fin.write(stdin or "")
        fin.seek(0)
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr,
                                env=dict(CHILD_ENV, LC_ALL="C.UTF-8", PYTHONPATH=str(ROOT)))
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        fout.seek(0)
        ferr.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"failed: {' '.join(cmd[:4])}...\n{ferr.read()[-3000:]}")
        return elapsed, usage.ru_maxrss, fout.read(), usage.ru_utime + usage.ru_stime


# The repos' key: the code that generates them (edits elsewhere in this script keep the generated repos).
GENERATOR = "".join(inspect.getsource(f) for f in (read_index, stanzas, evr, entry, one_dep, dep_entries,
                                                   package_xml, _file_xml, real_file_lists, file_list, write_repo,
                                                   generate, compute_names)) + PRIMARY_FILE.pattern

# The children run as installed software does, with bytecode caches (a PYTHONDONTWRITEBYTECODE=1 in the caller's
# environment would make every `plan` compile the builder's modules again: +0.05 s).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


SERVE = """import sys
from tests.upstream.http import RepoHTTPServer
with RepoHTTPServer(sys.argv[1]) as s:
    print(s.url, flush=True)
    sys.stdin.read()
"""


def serve_tree(repos: Path, srv: Path) -> None:
    """The tree the bench serves: hard links to the generated repodata, except the updates repo's repomd.xml, a copy
    that `republish` rewrites (the server refuses symlinks that leave its root)."""
    for name in ("media", "updates"):
        (srv / name / "repodata").mkdir(parents=True)
        for f in (repos / name / "repodata").iterdir():
            dest = srv / name / "repodata" / f.name
            if f.name == "repomd.xml":
                shutil.copyfile(f, dest)
            else:
                os.link(f, dest)


def republish(repos: Path, srv: Path, generation: int) -> None:
    """The updates repo republished, as a mirror does when it syncs: the same packages, primary.xml.gz written
    again (another gzip header time, so another checksum) and a new repomd.xml. A warm plan then misses its plan
    cache entry and the updates repo's .solv, and loads the media's .solv: the libsolv path."""
    data = srv / "updates" / "repodata"
    original = next((repos / "updates" / "repodata").glob("*-primary.xml.gz"))
    body = gzip.compress(gzip.decompress(original.read_bytes()), compresslevel=6, mtime=generation)
    digest = hashlib.sha256(body).hexdigest()
    restore(repos, srv)
    (data / f"{digest}-primary.xml.gz").write_bytes(body)
    text = (repos / "updates" / "repodata" / "repomd.xml").read_text()
    text = text.replace(original.name.split("-")[0], digest)
    text = text.replace(f"<size>{original.stat().st_size}</size>", f"<size>{len(body)}</size>")
    text = re.sub(r"<revision>\d+</revision>", f"<revision>{2_000_000_000 + generation}</revision>", text)
    (data / "repomd.xml").write_text(text)


def restore(repos: Path, srv: Path) -> None:
    """The updates repo as generated again (no republished primary, the original repomd.xml)."""
    data = srv / "updates" / "repodata"
    keep = {f.name for f in (repos / "updates" / "repodata").iterdir()}
    for f in data.glob("*-primary.xml.gz"):
        if f.name not in keep:
            f.unlink()
    shutil.copyfile(repos / "updates" / "repodata" / "repomd.xml", data / "repomd.xml")


def nevras(packages: list[dict]) -> set[str]:
    return {f"{p['name']}-{p['epoch']}:{p['version']}-{p['release']}.{p['arch']}" for p in packages}


def spread(runs: list[tuple[float, int, str, float]], i: int) -> str:
    """min-max of field i (0 wall, 3 CPU) over the runs."""
    vals = sorted(r[i] for r in runs)
    return f"{vals[0]:.2f}-{vals[-1]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,20,200,2000")
    ap.add_argument("--runs", type=int, default=3, help="warm runs per tool, size and row (best and spread shown)")
    ap.add_argument("--no-filelists", action="store_true",
                    help="empty filelists.xml (the data as before 2026-12-01): dnf then parses primary only, as we do")
    ap.add_argument("--names-for", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--republish", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, filelists=not args.no_filelists)
        return
    if args.republish:
        republish(Path(args.republish[0]), Path(args.republish[1]), int(args.republish[2]))
        return
    if args.names_for:
        compute_names(args.names_for)
        return
    t = time.perf_counter()
    repos = make_repos(filelists=not args.no_filelists)
    prim = sum(os.path.getsize(p) for p in repos.glob("*/repodata/*primary.xml.gz"))
    fl = sum(os.path.getsize(p) for p in repos.glob("*/repodata/*filelists.xml.gz"))
    names = installable_names(repos)
    print(f"repos ready in {time.perf_counter() - t:.1f} s: {repos} (primary {prim / 2**20:.1f} MiB gz, "
          f"filelists {fl / 2**20:.1f} MiB gz), "
          f"{len(names)} installable names in the request pool", flush=True)
    rows = []
    generation = 0
    with tempfile.TemporaryDirectory(dir=WORK) as td:
        work = Path(td)
        serve_tree(repos, work / "srv")
        # The server runs in a child too: it reads whole files into memory, which would grow this process
        server = subprocess.Popen([sys.executable, "-c", SERVE, str(work / "srv")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=dict(CHILD_ENV, PYTHONPATH=str(ROOT)))
        try:
            assert server.stdout is not None
            base = server.stdout.readline().strip()
            urls = {n: f"{base}/{n}/" for n in ("media", "updates")}
            # untimed: writes the builder's bytecode caches, so the first cold run does not compile them
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bundler")], check=True,
                           env=CHILD_ENV, stdout=subprocess.DEVNULL)
            for n in (int(x) for x in args.sizes.split(",")):
                req = names[:n]
                manifest = work / f"plan-{n}.yaml"
                manifest.write_text(
                    "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: bench, version: '1'}\nspec:\n"
                    "  target: {os: el9, arch: x86_64}\n  prefer: newest\n  repos:\n"
                    f"    - {{name: media, baseurl: '{urls['media']}', onMedia: true}}\n"
                    f"    - {{name: updates, baseurl: '{urls['updates']}'}}\n  packages: {json.dumps(req)}\n")
                cache = work / f"cache-{n}"
                plan = [sys.executable, "-m", "bundler.cli", "plan", str(manifest), "--json", "--cache", str(cache)]
                droot = work / f"dnf-{n}"
                payload = json.dumps({"installroot": str(droot), "releasever": "9", "best": True,
                                      "weak_deps": False, "repos": list(urls.items()), "packages": req})
                dnf = [_dnf_python(), "-c", _RESOLVE_SCRIPT]
                cold = timed(plan)
                dcold = timed(dnf, payload)
                warm, changed, dwarm = [], [], []
                for _ in range(args.runs):  # interleaved, so a burst of load on the shared VM hits both tools
                    warm.append(timed(plan))
                    dwarm.append(timed(dnf, payload))
                changed_sets, dchanged = [], []
                for _ in range(args.runs):
                    generation += 1
                    # in a child: the measured processes are forked from this one, and a forked child's peak RSS
                    # starts at its parent's size (decompressing the primary here would add to every later one)
                    subprocess.run([sys.executable, __file__, "--republish", str(repos), str(work / "srv"),
                                    str(generation)], check=True)
                    changed.append(timed(plan))
                    changed_sets.append(nevras(json.loads(changed[-1][2])["packages"]
                                               + json.loads(changed[-1][2])["fromMedia"]))
                    dchanged.append(timed(dnf, payload))  # dnf sees the same new repomd.xml: its own miss
                restore(repos, work / "srv")  # the next size starts from the generated repodata again
                res = json.loads(dwarm[0][2])
                if "error" in res:
                    raise SystemExit(f"dnf failed for {n} names: {res['error'][:2000]}")
                data = json.loads(warm[0][2])
                ours, theirs = nevras(data["packages"] + data["fromMedia"]), nevras(res["packages"])
                same = ours == theirs and all(c == theirs for c in changed_sets) and all(
                    nevras(json.loads(w[2])["packages"] + json.loads(w[2])["fromMedia"]) == ours for w in warm)
                rows.append((n, len(ours), cold, warm, changed, dcold, dwarm, dchanged, same,
                             len(ours ^ theirs)))
                print(f"  {n} names done", flush=True)
        finally:
            assert server.stdin is not None
            server.stdin.close()  # the server stops when its stdin closes
            server.wait(timeout=30)
    best = lambda runs, i: min(r[i] for r in runs)  # noqa: E731
    print(f"\nbest of {args.runs} warm runs (min-max in brackets); wall s / CPU s (user+system) / peak RSS")
    print(f"{'names':>5} {'closure':>7} | {'plan cold':>16} | {'plan warm (plan cache)':>36} | "
          f"{'warm, updates republished':>36} | {'dnf cold':>16} | {'dnf warm':>36} | "
          f"{'dnf warm, updates republished':>36} | "
          f"{'warm/dnf':>13} {'republished/dnf':>15} {'cold dnf/plan':>13} | same set")
    for n, size, cold, warm, changed, dcold, dwarm, dchanged, same, diff in rows:
        def cell(runs):  # noqa: ANN001, ANN202
            return (f"{best(runs, 0):.2f} [{spread(runs, 0)}] {best(runs, 3):.2f} [{spread(runs, 3)}] "
                    f"{max(r[1] for r in runs) / 1024:>3.0f}Mi")
        print(f"{n:>5} {size:>7} | {cold[0]:.2f} {cold[3]:.2f} {cold[1] / 1024:>3.0f}Mi | {cell(warm):>36} | "
              f"{cell(changed):>36} | {dcold[0]:.2f} {dcold[3]:.2f} {dcold[1] / 1024:>3.0f}Mi | {cell(dwarm):>36} | "
              f"{cell(dchanged):>36} | "
              f"{best(warm, 0) / best(dwarm, 0):.2f}/{best(warm, 3) / best(dwarm, 3):.2f}x "
              f"{best(changed, 0) / best(dchanged, 0):.2f}/{best(changed, 3) / best(dchanged, 3):.2f}x "
              f"{dcold[0] / cold[0]:.2f}/{dcold[3] / cold[3]:.2f}x | {'yes' if same else f'no ({diff} differ)'}")
    print("ratios: wall/CPU, best against best; republished/dnf: both after the same republish")

if __name__ == "__main__":
    main()
