"""Verifier parity: `bundler verify` and install.py's check judge every tampered bundle the same way.

One small real bundle (bundles.write_bundle, unpacked with GNU tar) is damaged in every way we know, as an
unpacked tree and as a tarball. The bundler's verdict comes from its Python API; the installer's from
installer/verify_bundle.py run by the system python3 with `-I -S` (no site-packages, no PYTHONPATH: the
standard library only), imported the way install.py imports it. For a tarball the installer side is what the
operator does (INSTALL.md): `tar -xzf` and, only if that succeeds, install.py's check of the unpacked directory.
Every case must get the same verdict from both, and every refusal must name the bad path.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bundler.bundle.sign import sign_bytes
from bundler.bundle.sums import format_sums, parse_sums, sha256_file
from bundler.bundle.verify import verify

from .bundles import TOP, add_file, add_link, content, sha, write_bundle

REPO = Path(__file__).resolve().parents[2]
RPM = "repo/Packages/kubeadm-1.30.4-150500.1.1.x86_64.rpm"
GIB = 1 << 30

#: install.py's import path and call, under the bare standard library; prints one JSON verdict per tree.
INSTALLER_DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from installer.errors import InstallerError
from installer.verify_bundle import verify
key = sys.argv[2] or None
for tree in sys.argv[3:]:
    try:
        print(json.dumps({"ok": True, "files": verify(tree, key)}))
    except InstallerError as e:
        print(json.dumps({"ok": False, "message": str(e)}))
"""


@dataclass
class Case:
    name: str
    damage: Callable[[Path, Path], None]  # (top, scratch dir outside the tree)
    bad: tuple[str, ...] = ()  # paths a refusal must name; () means the bundle is accepted
    signed: bool = False  # checked with --key (the tree is signed by the signer before the damage)
    tar: bool = True  # also as a re-tarred tarball


def flip(top: Path, rel: str) -> None:
    p = top / rel
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def edit_sums(top: Path, change: Callable[[str], str]) -> None:
    p = top / "SHA256SUMS"
    p.write_text(change(p.read_text()))


def resum(top: Path) -> None:
    """Recompute SHA256SUMS over the tree, as someone who edits the bundle and covers their tracks."""
    files = {q.relative_to(top).as_posix(): sha256_file(q) for q in sorted(top.rglob("*"))
             if q.is_file() and q.name not in ("SHA256SUMS", "SHA256SUMS.asc")}
    (top / "SHA256SUMS").write_text(format_sums(files))


def replace(top: Path, rel: str, make: Callable[[Path], None]) -> None:
    (top / rel).unlink()
    make(top / rel)


def socket_file(path: Path) -> None:
    """A socket inode at `path`: bound at a short name (sun_path is ~108 bytes), then renamed into place."""
    short = Path(tempfile.mkdtemp(prefix="h3s", dir="/tmp"))
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(short / "s"))
        os.rename(short / "s", path)
    finally:
        s.close()
        shutil.rmtree(short)


def sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def hardlink_outside_same_bytes(top: Path, scratch: Path) -> None:
    outside = scratch / "registry-copy"
    shutil.copyfile(top / "files/registry", outside)
    (top / "files/registry").unlink()
    os.link(outside, top / "files/registry")


def dir_to_outside_link(top: Path, scratch: Path) -> None:
    shutil.copytree(top / "files", scratch / "files-copy")
    shutil.rmtree(top / "files")
    os.symlink(scratch / "files-copy", top / "files")


def tree_cases() -> list[Case]:
    passwd = "/etc/passwd"
    return [
        Case("pristine", lambda t, s: None),
        Case("flipped byte in a package", lambda t, s: flip(t, RPM), (RPM,)),
        Case("flipped byte in install.py", lambda t, s: flip(t, "install.py"), ("install.py",)),
        Case("truncated file", lambda t, s: os.truncate(t / "files/registry", 5), ("files/registry",)),
        Case("emptied file", lambda t, s: os.truncate(t / "images/index.json", 0), ("images/index.json",)),
        Case("missing listed file", lambda t, s: (t / "manifests/calico.yaml").unlink(), ("manifests/calico.yaml",)),
        Case("extra file at the top", lambda t, s: (t / "evil.sh").write_text("rm -rf /\n"), ("evil.sh",)),
        Case("extra package in the repo", lambda t, s: (t / "repo/Packages/evil-1-1.x86_64.rpm").write_bytes(b"x"),
             ("repo/Packages/evil-1-1.x86_64.rpm",)),
        Case("extra hidden file", lambda t, s: (t / "repo/.evil").write_text("x"), ("repo/.evil",)),
        Case("extra empty directory (holds nothing: accepted)", lambda t, s: (t / "repo/empty").mkdir()),
        Case("symlink to /etc/passwd", lambda t, s: os.symlink(passwd, t / "files/passwd"), ("files/passwd",)),
        Case("listed file replaced by a symlink to /etc/passwd",
             lambda t, s: replace(t, "files/registry", lambda p: os.symlink(passwd, p)), ("files/registry",)),
        Case("relative symlink escaping the tree", lambda t, s: os.symlink("../../..", t / "files/up"),
             ("files/up",)),
        Case("relative symlink inside the tree, unlisted", lambda t, s: os.symlink("registry", t / "files/alias"),
             ("files/alias",)),
        Case("listed file replaced by a symlink to another bundle file",
             lambda t, s: replace(t, "files/registry", lambda p: os.symlink("../INSTALL.md", p)), ("files/registry",)),
        Case("symlink loop", lambda t, s: (os.symlink("b", t / "files/a"), os.symlink("a", t / "files/b")),
             ("files/a", "files/b")),
        Case("symlink to a directory inside the tree", lambda t, s: os.symlink("Packages", t / "repo/P2"),
             ("repo/P2",)),
        Case("directory replaced by a symlink to a copy outside", dir_to_outside_link, ("files",)),
        Case("hard link to a listed file under a new name", lambda t, s: os.link(t / RPM, t / "repo/Packages/x.rpm"),
             ("repo/Packages/x.rpm",)),
        Case("listed file replaced by a hard link to another listed file",
             lambda t, s: replace(t, "files/registry", lambda p: os.link(t / "INSTALL.md", p)), ("files/registry",)),
        Case("hard link to a file outside with the right bytes (accepted: content is what counts)",
             hardlink_outside_same_bytes),
        Case("device file", lambda t, s: os.mknod(t / "files/null", 0o600 | 0o020000, os.makedev(1, 3)),
             ("files/null",)),
        Case("listed file replaced by /dev/zero's device (never read)",
             lambda t, s: replace(t, "files/registry", lambda p: os.mknod(p, 0o600 | 0o020000, os.makedev(1, 5))),
             ("files/registry",)),
        Case("FIFO", lambda t, s: os.mkfifo(t / "files/pipe"), ("files/pipe",)),
        Case("listed file replaced by a FIFO (never opened)",
             lambda t, s: replace(t, "install.py", lambda p: os.mkfifo(p)), ("install.py",)),
        Case("socket", lambda t, s: socket_file(t / "files/sock"), ("files/sock",), tar=False),  # tar skips sockets
        Case("unlisted 1 GiB sparse file (refused by listing)", lambda t, s: sparse(t / "files/big.img", GIB),
             ("files/big.img",), tar=False),  # as a tarball it is 1 GiB of zeros to inflate: same rule, slower
        Case("the installer's own cluster record at the top (accepted: written after the check)",
             lambda t, s: (t / "cluster.json").write_text('{"inventory": {}}')),
        Case("a cluster record that is a symlink to /etc/passwd",
             lambda t, s: os.symlink(passwd, t / "cluster.json"), ("cluster.json",)),
        Case("the temporary file of a cluster record write killed midway (accepted)",
             lambda t, s: (t / "cluster.json.tmp-4242").write_text('{"inv')),
        Case("a file named like that temporary file but below the top",
             lambda t, s: (t / "files/cluster.json.tmp-1").write_text("{}"), ("files/cluster.json.tmp-1",)),
        Case("a cluster record below the top", lambda t, s: (t / "files/cluster.json").write_text("{}"),
             ("files/cluster.json",)),
        Case("SHA256SUMS deleted", lambda t, s: (t / "SHA256SUMS").unlink(), ("SHA256SUMS",)),
        Case("SHA256SUMS with a malformed line", lambda t, s: edit_sums(t, lambda x: x + "not a checksum line\n"),
             ("SHA256SUMS",)),
        Case("SHA256SUMS listing a path twice",
             lambda t, s: edit_sums(t, lambda x: x + x.splitlines(keepends=True)[0]), ("SHA256SUMS",)),
        Case("SHA256SUMS listing ../etc/passwd", lambda t, s: edit_sums(
            t, lambda x: x + f"{sha256_file(passwd)}  ../../../../../../etc/passwd\n"),
             ("../../../../../../etc/passwd",)),
        Case("SHA256SUMS listing /etc/passwd", lambda t, s: edit_sums(
            t, lambda x: x + f"{sha256_file(passwd)}  /etc/passwd\n"), ("/etc/passwd",)),
        Case("SHA256SUMS entry removed", lambda t, s: edit_sums(
            t, lambda x: "".join(ln for ln in x.splitlines(True) if not ln.endswith("  INSTALL.md\n"))),
             ("INSTALL.md",)),
        Case("SHA256SUMS digest changed", lambda t, s: edit_sums(
            t, lambda x: x.replace(parse_sums(x)["files/registry"], "0" * 64)), ("files/registry",)),
        Case("SHA256SUMS with CRLF line ends (what sha256sum -c accepts)",
             lambda t, s: edit_sums(t, lambda x: x.replace("\n", "\r\n"))),
        Case("SHA256SUMS replaced by a symlink to /etc/passwd",
             lambda t, s: replace(t, "SHA256SUMS", lambda p: os.symlink(passwd, p)), ("SHA256SUMS",)),
        Case("SHA256SUMS replaced by a FIFO (never opened)",
             lambda t, s: replace(t, "SHA256SUMS", lambda p: os.mkfifo(p)), ("SHA256SUMS",)),
        Case("bundle.json edited", lambda t, s: (t / "bundle.json").write_text("{}"), ("bundle.json",)),
        Case("SBOM edited (one byte of the CycloneDX document)", lambda t, s: flip(t, "sbom/bundle.cdx.json"),
             ("sbom/bundle.cdx.json",)),
        Case("SBOM removed", lambda t, s: (t / "sbom/bundle.spdx.json").unlink(), ("sbom/bundle.spdx.json",)),
        Case("bundle.json removed and dropped from SHA256SUMS",
             lambda t, s: ((t / "bundle.json").unlink(), resum(t)), ("bundle.json",)),
        Case("bundle.json edited and SHA256SUMS recomputed, unsigned (nothing can tell: accepted)",
             lambda t, s: ((t / "bundle.json").write_text('{"schemaVersion": 1}'), resum(t))),
        Case("signed and intact", lambda t, s: None, signed=True),
        Case("signed, then bundle.json edited and SHA256SUMS recomputed",
             lambda t, s: ((t / "bundle.json").write_text('{"schemaVersion": 1}'), resum(t)), ("SHA256SUMS.asc",),
             signed=True),
        Case("signed, then the signature removed", lambda t, s: (t / "SHA256SUMS.asc").unlink(),
             ("SHA256SUMS.asc",), signed=True),
        Case("signed, then the signature corrupted", lambda t, s: (t / "SHA256SUMS.asc").write_text("garbage\n"),
             ("SHA256SUMS.asc",), signed=True),
        Case("signed by another key", lambda t, s: None, ("SHA256SUMS.asc",), signed=True),
    ]


def tar_only_cases(pristine_files: dict[str, bytes]) -> list[tuple[str, Callable[[Path], Path], tuple[str, ...]]]:
    """Defects that exist only inside a tar stream: (name, writer of the tarball into a dir, paths to name)."""
    original = pristine_files["files/registry"]

    def hostile(extra: Callable[[tarfile.TarFile], None]) -> Callable[[Path], Path]:
        return lambda d: write_bundle(d, dict(pristine_files), extra=extra)

    def truncated(d: Path) -> Path:
        p = write_bundle(d, dict(pristine_files))
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p

    def dup(first: bytes, last: bytes) -> Callable[[Path], Path]:
        files = dict(pristine_files)
        del files["files/registry"]

        def extra(t: tarfile.TarFile) -> None:
            add_file(t, f"{TOP}/files/registry", first)
            add_file(t, f"{TOP}/files/registry", last)
        return lambda d: write_bundle(d, files, extra=extra, also_listed={"files/registry": original})

    return [
        ("member with '..' climbing out", hostile(lambda t: add_file(t, f"{TOP}/../escaped", b"x")),
         (f"{TOP}/../escaped",)),
        ("absolute member inside the bundle's name", hostile(lambda t: add_file(t, f"/{TOP}/files/abs", b"x")),
         ("files/abs",)),
        ("hard link member to /etc/passwd", hostile(lambda t: add_link(t, f"{TOP}/files/h", "/etc/passwd", True)),
         ("files/h",)),
        ("hard link member climbing out", hostile(lambda t: add_link(t, f"{TOP}/files/h", "../../etc/passwd", True)),
         ("files/h",)),
        ("symlink member to /etc/passwd", hostile(lambda t: add_link(t, f"{TOP}/files/s", "/etc/passwd")),
         ("files/s",)),
        ("duplicate member, the last copy tampered", dup(original, b"evil"), ("files/registry",)),
        ("truncated tarball", truncated, ()),  # names the tarball itself and the files it lacks
    ]


#: Tarball defects install.py cannot see, because GNU tar leaves the bundle directory exactly as built: the
#: bundler refuses the tarball; the operator's tree is asserted byte-identical to the original one.
def extraction_only_cases(pristine_files: dict[str, bytes]) -> list[tuple[str, Callable[[Path], Path]]]:
    original = pristine_files["files/registry"]
    files = dict(pristine_files)
    del files["files/registry"]

    def dup_first_tampered(t: tarfile.TarFile) -> None:
        add_file(t, f"{TOP}/files/registry", b"evil")
        add_file(t, f"{TOP}/files/registry", original)

    return [
        ("absolute member outside the bundle (tar strips the '/')",
         lambda d: write_bundle(d, dict(pristine_files), extra=lambda t: add_file(t, "/h3-outside", b"x"))),
        ("second top-level entry",
         lambda d: write_bundle(d, dict(pristine_files), extra=lambda t: add_file(t, "other/file", b"x"))),
        ("duplicate member, the first copy tampered (tar keeps the last)",
         lambda d: write_bundle(d, files, extra=dup_first_tampered, also_listed={"files/registry": original})),
    ]


def installer_verdicts(trees: list[Path], key: Path | None) -> list[dict]:
    if not trees:
        return []
    r = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", INSTALLER_DRIVER, str(REPO), str(key or ""),
                        *map(str, trees)], capture_output=True, text=True, timeout=120,
                       env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(trees)
    return out


def operator_unpack(tarball: Path, into: Path) -> tuple[Path | None, str]:
    """`tar -xzf` as INSTALL.md says; (the bundle directory, or None if tar failed; tar's stderr)."""
    into.mkdir()
    r = subprocess.run(["tar", "-xf", str(tarball), "-C", str(into)], capture_output=True, text=True, timeout=60)
    return (into / TOP if r.returncode == 0 else None), r.stderr


def retar(top: Path, dest: Path) -> Path:
    """GNU tar of the damaged tree, as someone re-packing a bundle would; keeps links, devices, FIFOs."""
    subprocess.run(["tar", "-czf", str(dest), "-C", str(top.parent), top.name], check=True, capture_output=True)
    return dest


def sign_tree(top: Path, home: Path, fpr: str) -> None:
    (top / "SHA256SUMS.asc").write_bytes(sign_bytes((top / "SHA256SUMS").read_bytes(), fpr, home))


def tree_digest(top: Path) -> dict[str, str]:
    return {p.relative_to(top).as_posix(): sha256_file(p) if p.is_file() and not p.is_symlink() else "other"
            for p in sorted(top.rglob("*"))}


def test_both_verifiers_give_the_same_verdict_on_every_tampered_bundle(tmp_path: Path, gpg_keys) -> None:
    signer, stranger = gpg_keys
    files = content(sbom=True)
    pristine = operator_unpack(write_bundle(tmp_path, files), tmp_path / "pristine")[0]
    assert pristine is not None
    rows: list[tuple[str, str, bool, bool, tuple[str, ...], str, str]] = []  # form, case, bundler, installer, ...
    trees: dict[bool, list[tuple[Case, Path]]] = {False: [], True: []}
    timings: dict[str, float] = {}
    for n, case in enumerate(tree_cases()):
        work = tmp_path / f"c{n:02d}"
        scratch = work / "outside"
        scratch.mkdir(parents=True)
        top = work / "t" / TOP
        shutil.copytree(pristine, top, symlinks=True)
        if case.signed:
            sign_tree(top, stranger.home if case.name == "signed by another key" else signer.home,
                      stranger.fpr if case.name == "signed by another key" else signer.fpr)
        case.damage(top, scratch)
        trees[case.signed].append((case, top))

    # unpacked trees: both verifiers on the same directory
    for signed, group in trees.items():
        key = signer.public if signed else None
        started = time.monotonic()
        inst = installer_verdicts([t for _, t in group], key)
        timings[f"installer, {len(group)} trees"] = time.monotonic() - started
        for (case, top), iv in zip(group, inst):
            started = time.monotonic()
            rep = verify(top, key=key)
            timings[case.name] = time.monotonic() - started
            rows.append(("tree", case.name, rep.ok, iv["ok"], case.bad, rep.format(), iv.get("message", "")))

    # the same damage as a tarball: bundler verify on the tarball; the operator's tar -xzf, then install.py's check
    tar_inputs: list[tuple[str, Path, tuple[str, ...], bool]] = []
    for signed, group in trees.items():
        for case, top in group:
            if case.tar:
                tar_inputs.append((case.name, retar(top, top.parent.parent / "b.tar.gz"), case.bad, signed))
    for n, (name, write, bad) in enumerate(tar_only_cases(files)):
        d = tmp_path / f"tar{n:02d}"
        d.mkdir()
        tar_inputs.append((name, write(d), bad, False))
    unpacked: dict[bool, list[tuple[int, Path]]] = {False: [], True: []}
    chain: dict[int, tuple[bool | None, str]] = {}
    for i, (_name, tarball, _bad, signed) in enumerate(tar_inputs):
        top, err = operator_unpack(tarball, tarball.parent / f"x{i}")
        if top is None:
            chain[i] = (False, "tar: " + err)  # the operator's `tar -xzf ... &&` stops here
        else:
            unpacked[signed].append((i, top))
    for signed, group in unpacked.items():
        for (i, _top), iv in zip(group, installer_verdicts([t for _, t in group], signer.public if signed else None)):
            chain[i] = (iv["ok"], iv.get("message", ""))
    for i, (name, tarball, bad, signed) in enumerate(tar_inputs):
        rep = verify(tarball, key=signer.public if signed else None)
        rows.append(("tar", name, rep.ok, bool(chain[i][0]), bad, rep.format(), chain[i][1]))

    # report, then judge
    print(f"\n{'form':5} {'bundler':8} {'install':8} case")
    for form, name, b_ok, i_ok, _bad, _b, _i in rows:
        print(f"{form:5} {'accept' if b_ok else 'refuse':8} {'accept' if i_ok else 'refuse':8} {name}")
    same = sum(1 for r in rows if r[2] == r[3])
    print(f"corpus: {len(rows)} cases ({sum(r[0] == 'tree' for r in rows)} trees, "
          f"{sum(r[0] == 'tar' for r in rows)} tarballs); identical verdicts: {same}/{len(rows)}")
    print("slowest checks (s): " + ", ".join(f"{k}: {v:.2f}" for k, v in
                                            sorted(timings.items(), key=lambda kv: -kv[1])[:3]))
    assert same == len(rows), [r[:4] for r in rows if r[2] != r[3]]
    for form, name, b_ok, _i_ok, bad, b_text, i_text in rows:
        assert b_ok == (not bad) or name == "truncated tarball", (form, name, b_text)
        for path in bad:  # every refusal names every bad path, on both sides
            assert path in b_text, (form, name, path, b_text)
            assert path in i_text, (form, name, path, i_text)
        if not b_ok and form == "tree":
            assert "Nothing was changed on any host" in i_text and ".sha256" in i_text, i_text
    assert timings["unlisted 1 GiB sparse file (refused by listing)"] < 2.0

    # tarball defects that never reach the unpacked directory: bundler refuses, the operator's tree is pristine
    for n, (name, write) in enumerate(extraction_only_cases(files)):
        d = tmp_path / f"only{n}"
        d.mkdir()
        tarball = write(d)
        assert not verify(tarball).ok, name
        top, _ = operator_unpack(tarball, d / "x")
        assert top is not None and tree_digest(top) == tree_digest(pristine), name
        assert installer_verdicts([top], None)[0]["ok"], name


def test_shipped_install_py_refuses_a_tampered_tree_before_touching_anything(tmp_path: Path, stack) -> None:
    """A real bundle from `bundler build`, unpacked with tar, its own ./install.py run as an operator would:
    intact, it checks out (twice: running it leaves nothing the next check would refuse); tampered, plan and
    reset stop at the check, naming every bad path, before the inventory, the log directory or any host."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(stack.manifest(packages=["kubeadm-1.30.4", "containerd.io"]))
    built = subprocess.run([sys.executable, "-m", "bundler.cli", "build", str(manifest), "-o", str(tmp_path / "out"),
                            "--cache", str(tmp_path / "cache"), "-q"], capture_output=True, text=True,
                           env={**env, "PYTHONPATH": str(REPO)}, timeout=300)
    assert built.returncode == 0, built.stderr
    tarball = next((tmp_path / "out").glob("*.tar.gz"))
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(tmp_path)], check=True)
    top = tmp_path / tarball.name[: -len(".tar.gz")]
    root = tmp_path / "root"  # install.py's --root: where its local writes (logs, records) would land

    def install_py(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["./install.py", *args, "--root", str(root)], cwd=top, capture_output=True, text=True,
                              env=env, timeout=120, stdin=subprocess.DEVNULL)

    helped = subprocess.run(["./install.py", "--help"], cwd=top, capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0 and "--key" in helped.stdout, helped.stderr
    for _ in range(2):  # the check passes, then plan stops at the missing OS media (before any host)
        plan = install_py("plan", "--control-plane", "127.0.0.1", "--media", str(tmp_path / "no-media"))
        assert "bundle OK" in plan.stdout, plan.stdout + plan.stderr
    assert not list(top.rglob("__pycache__"))
    shutil.rmtree(root, ignore_errors=True)  # plan keeps its log in a temp dir: usually nothing here

    (top / "repo/Packages/evil-1.0-1.x86_64.rpm").write_bytes(b"x")
    os.symlink("/etc/passwd", top / "files/passwd")
    os.mkfifo(top / "manifests/pipe")
    flip(top, "bundle.json")
    bad = ("repo/Packages/evil-1.0-1.x86_64.rpm", "files/passwd", "manifests/pipe", "bundle.json")
    # 192.0.2.1 (TEST-NET) would hang if contacted
    for args in (("plan", "--control-plane", "192.0.2.1"), ("install", "--control-plane", "192.0.2.1"),
                 ("reset", "-y", "--control-plane", "192.0.2.1")):
        r = install_py(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: the bundle in "), r.stderr
        assert all(f"{p}: " in r.stderr for p in bad), r.stderr
        assert "Nothing was changed on any host" in r.stderr and "connecting" not in r.stdout
        assert not root.exists()  # not even the log directory


# ---- delta bundles (rule R9): omitted files are not missing, and tampering is still refused -------------------

BLOB_OMITTED = 0  # index into the image blobs of bundles.content(): the first is omitted, the second shipped


def delta_files() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(files of a delta bundle, the omitted ones): one RPM, one image blob and files/registry left out, listed
    in bundle.json's delta section with their sha256 (and, as the builder does, still in SHA256SUMS)."""
    files = content()
    blobs = sorted(p for p in files if p.startswith("images/blobs/sha256/"))
    omitted = {p: files.pop(p) for p in (RPM, blobs[BLOB_OMITTED], "files/registry")}
    bom = json.loads(files["bundle.json"])
    section: dict[str, list[dict]] = {"packages": [], "blobs": [], "files": []}
    for p, data in omitted.items():
        kind = "packages" if p.startswith("repo/") else "blobs" if p.startswith("images/") else "files"
        section[kind].append({"path": p, "sha256": sha(data)})
    bom["delta"] = {"deltaVersion": 1, "base": {"kind": "state", "sha256": "0" * 64, "bundles": []},
                    "omitted": section}
    files["bundle.json"] = json.dumps(bom, indent=2).encode()
    return files, omitted


def edit_delta(top: Path, change: Callable[[dict], None], resum_json: bool = True) -> None:
    """Edit bundle.json's delta section; with resum_json, also its line in SHA256SUMS (covering the tracks)."""
    bom = json.loads((top / "bundle.json").read_text())
    change(bom["delta"])
    (top / "bundle.json").write_text(json.dumps(bom))
    if resum_json:
        edit_sums(top, lambda x: x.replace(parse_sums(x)["bundle.json"], sha256_file(top / "bundle.json")))


def delta_cases(omitted: dict[str, bytes]) -> list[Case]:
    blob = next(p for p in omitted if p.startswith("images/"))

    def put_back(t: Path, rel: str, data: bytes) -> None:
        (t / rel).parent.mkdir(parents=True, exist_ok=True)
        (t / rel).write_bytes(data)

    def omit_more(rel: str) -> Callable[[dict], None]:
        return lambda d: d["omitted"]["files"].append({"path": rel, "sha256": sha256_file(REPO / "README.md")})

    def omit_installer(t: Path, s: Path) -> None:
        digest = parse_sums((t / "SHA256SUMS").read_text())["install.py"]
        (t / "install.py").unlink()
        edit_delta(t, lambda d: d["omitted"]["files"].append({"path": "install.py", "sha256": digest}))

    def wrong_digest(d: dict) -> None:
        d["omitted"]["blobs"][0]["sha256"] = "1" * 64

    return [
        Case("delta: pristine (omitted files listed, not present: accepted)", lambda t, s: None),
        Case("delta: completed on site (every omitted file put back: accepted)",
             lambda t, s: [put_back(t, p, d) for p, d in omitted.items()]),
        Case("delta: one omitted file put back (a completion in progress: accepted)",
             lambda t, s: put_back(t, RPM, omitted[RPM])),
        Case("delta: an omitted file put back with other bytes", lambda t, s: put_back(t, blob, b"evil"), (blob,)),
        Case("delta: a shipped file missing (not omitted)", lambda t, s: (t / "manifests/calico.yaml").unlink(),
             ("manifests/calico.yaml",)),
        Case("delta: bundle.json edited to omit a shipped file, SHA256SUMS not recomputed",
             lambda t, s: (edit_delta(t, omit_more("files/extra"), resum_json=False),
                           (t / "INSTALL.md").unlink()), ("bundle.json", "INSTALL.md")),
        Case("delta: install.py removed and declared omitted, SHA256SUMS recomputed (only content may be omitted)",
             omit_installer, ("install.py",)),
        Case("delta: the delta section's digest differs from SHA256SUMS", lambda t, s: edit_delta(t, wrong_digest),
             (next(p for p in omitted if p.startswith("images/")),)),
        Case("delta: the omitted RPM dropped from SHA256SUMS", lambda t, s: edit_sums(
            t, lambda x: "".join(ln for ln in x.splitlines(True) if not ln.endswith(f"  {RPM}\n"))), (RPM,)),
    ]


def test_both_verifiers_accept_a_delta_bundle_and_still_refuse_tampering(tmp_path: Path) -> None:
    files, omitted = delta_files()
    tarball = write_bundle(tmp_path, files, also_listed=omitted)
    rep = verify(tarball)
    assert rep.ok and rep.omitted == len(omitted), rep.format()
    pristine = operator_unpack(tarball, tmp_path / "pristine")[0]
    assert pristine is not None and not (pristine / RPM).exists()
    cases = delta_cases(omitted)
    trees = []
    for n, case in enumerate(cases):
        top = tmp_path / f"d{n:02d}" / "t" / TOP
        shutil.copytree(pristine, top, symlinks=True)
        case.damage(top, tmp_path)
        trees.append(top)
    rows = []
    for case, top, iv in zip(cases, trees, installer_verdicts(trees, None)):
        rows.append(("tree", case, verify(top), iv["ok"], iv.get("message", "")))
        tb = retar(top, top.parent.parent / "b.tar.gz")
        unpacked, err = operator_unpack(tb, top.parent.parent / "x")
        chained = installer_verdicts([unpacked], None)[0] if unpacked else {"ok": False, "message": err}
        rows.append(("tar", case, verify(tb), chained["ok"], chained.get("message", "")))
    for form, case, rep, i_ok, i_text in rows:
        print(f"{form:5} {'accept' if rep.ok else 'refuse':8} {'accept' if i_ok else 'refuse':8} {case.name}")
        assert rep.ok == i_ok == (not case.bad), (form, case.name, rep.format(), i_text)
        for path in case.bad:
            assert path in rep.format() and path in i_text, (form, case.name, path, rep.format(), i_text)
