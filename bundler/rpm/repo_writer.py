"""Writing the bundle's yum repository with createrepo_c, reproducibly and readable by EL7's yum."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

# Fixed metadata time: the same packages always give byte-identical repodata (reproducible bundles).
DEFAULT_EPOCH = 1577836800  # 2020-01-01T00:00:00Z


def place(src: Path, dest: Path) -> None:
    """Hard-link from the cache when possible (no copy, no extra disk), else copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def write_repo(
    repo_dir: Path,
    rpms: list[Path],
    *,
    modules_yaml: str | None = None,
    epoch: int | None = None,
) -> Path:
    """Write repodata/ for the RPMs already placed under repo_dir (gzip: EL7's yum reads no zstd)."""
    import createrepo_c as cr  # here, not at the top: `bundler plan` imports this module and writes no repo

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH)) if epoch is None else epoch
    repodata = repo_dir / "repodata"
    if repodata.exists():
        shutil.rmtree(repodata)
    repodata.mkdir(parents=True)
    rpms = sorted(rpms, key=lambda p: p.relative_to(repo_dir).as_posix())

    paths = {t: repodata / f"{t}.xml.gz" for t in ("primary", "filelists", "other")}
    writers = {
        "primary": cr.PrimaryXmlFile(str(paths["primary"]), cr.GZ_COMPRESSION),
        "filelists": cr.FilelistsXmlFile(str(paths["filelists"]), cr.GZ_COMPRESSION),
        "other": cr.OtherXmlFile(str(paths["other"]), cr.GZ_COMPRESSION),
    }
    for w in writers.values():
        w.set_num_of_pkgs(len(rpms))
    content = hashlib.sha256()
    for rpm in rpms:
        href = rpm.relative_to(repo_dir).as_posix()
        pkg = cr.package_from_rpm(str(rpm), checksum_type=cr.SHA256, location_href=href, changelog_limit=10)
        pkg.time_file = epoch  # not the file's mtime: the RPM is a hard link into the cache, left untouched
        content.update(f"{href} {pkg.pkgId}\n".encode())
        for w in writers.values():
            w.add_pkg(pkg)
    for w in writers.values():
        w.close()

    extra: dict[str, Path] = {}
    if modules_yaml:
        plain = repodata / "modules.yaml"
        plain.write_text(modules_yaml, encoding="utf-8")
        gz = repodata / "modules.yaml.gz"
        cr.compress_file(str(plain), str(gz), cr.GZ_COMPRESSION)
        plain.unlink()
        extra["modules"] = gz
        content.update(modules_yaml.encode())

    repomd = cr.Repomd()
    # Revision from the content: changes exactly when the package set changes, so hosts refresh caches.
    repomd.set_revision(content.hexdigest()[:16])
    for mdtype, path in list(paths.items()) + list(extra.items()):
        os.utime(path, (epoch, epoch))
        rec = cr.RepomdRecord(mdtype, str(path))
        rec.fill(cr.SHA256)
        rec.rename_file()
        rec.set_timestamp(epoch)
        repomd.set_record(rec)
    repomd.sort_records()
    out = repodata / "repomd.xml"
    out.write_text(repomd.xml_dump(), encoding="utf-8")
    return out
