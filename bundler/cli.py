"""Command line: a thin layer over the library; it parses options, prints, and maps errors to exit codes."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .errors import BundlerError
from .fetch.cache import Cache, default_cache_dir

if TYPE_CHECKING:  # imported late at run time: --help needs neither tqdm nor the build's imports
    from .build import StepStat
    from .progress import Stages


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def exit_for(e: BaseException) -> NoReturn:
    """The one place an error becomes an exit code: a BundlerError is printed as one wrapped paragraph (no
    traceback for operator mistakes) and exits with its exit_code (1, or 2 for a bad manifest or command line);
    Ctrl-C exits 130. Everything else propagates (a bug: its traceback is wanted)."""
    if isinstance(e, KeyboardInterrupt):
        click.echo("interrupted: finished downloads stay in the cache; run the same command to resume.", err=True)
        sys.exit(130)
    if not isinstance(e, BundlerError):
        raise e
    click.echo(textwrap.fill(f"error: {e}", width=100, break_long_words=False, break_on_hyphens=False), err=True)
    sys.exit(e.exit_code)


class _Commands(click.Group):
    """Runs every command (nested groups such as `cache` included) through exit_for, like pip's base command:
    a new command cannot forget the mapping."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (BundlerError, KeyboardInterrupt) as e:
            exit_for(e)


cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Content-addressed download cache [default: $XDG_CACHE_HOME/airgap-bundler].",
)
manifest_arg = click.argument("manifest", type=click.Path(path_type=Path))


def _cache(cache_dir: Path | None) -> Cache:
    return Cache(cache_dir or default_cache_dir())


def _stages() -> Stages:
    """The resolve stages of plan and lock, shown on a terminal only (their output is often piped)."""
    from .progress import Stages

    return Stages(enabled=sys.stderr.isatty())


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bundler")
def main() -> None:
    """Build offline Kubernetes bundles for EL7-EL10 hosts with no internet."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")


insecure_option = click.option(
    "--insecure-registry", "insecure", multiple=True, metavar="HOST",
    help="Registry host reached over plain HTTP / unverified TLS (repeatable; adds to spec.registries).",
)


@main.command()
@manifest_arg
@cache_option
@insecure_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(manifest: Path, cache_dir: Path | None, insecure: tuple[str, ...], as_json: bool) -> None:
    """Resolve everything and print what a build would fetch, with sizes (downloads no RPM or layer)."""
    from .build import plan as make_plan
    from .manifest import load_manifest

    cache = _cache(cache_dir)
    m = load_manifest(manifest, cache.root)
    data = make_plan(m, cache, stages=_stages(), insecure=insecure)
    if as_json:
        from .jsonout import dumps  # json.dumps(indent=2)'s text, faster on thousands of packages

        click.echo(dumps(data))
        return
    click.echo(format_plan(data))


def format_plan(data: dict) -> str:
    """`bundler plan` as text: one aligned table per kind (packages, media packages, images, files)."""
    from .table import columns

    t = data["totals"]
    out = [f"bundle {data['bundle']}  (prefer: {data['prefer']})",
           f"packages to ship: {t['packages']}, {_human(t['packageBytes'])}"]
    out += columns([(p["name"], _evr(p), p["arch"], p["repo"], _human(p["size"])) for p in data["packages"]],
                   right=(4,))
    if data["fromMedia"]:
        out.append(f"taken from the install media (not shipped): {len(data['fromMedia'])}")
        out += columns([(p["name"], _evr(p), p["arch"], p["repo"]) for p in data["fromMedia"]])
    k8s = data.get("kubernetes") or {}
    if k8s.get("hops"):
        out.append(f"Kubernetes {k8s['version']}, upgrades clusters from {k8s['upgradeFrom']} through "
                   f"{len(k8s['hops'])} hop(s):")
        out += columns([(f"hop {h['version']}", ", ".join(h["packages"]) or "(no packages)",
                         f"{len(h['images'])} images from {h['imagesFrom']}") for h in k8s["hops"]])
    source = f" (Kubernetes' own as listed by {data['kubeadmImagesFrom']})" if data.get("kubeadmImagesFrom") else ""
    out.append(f"images: {t['images']}, {_human(t['imageBytes'])}{source}")
    out += columns([(i["ref"], i["digest"][:19], _human(i["size"])) for i in data["images"]], right=(2,))
    out.append(f"files: {t['files']}, {_human(t['fileBytes'])}")
    out += columns([(f["path"], _human(f["size"]), f"({f['pinnedBy']})") for f in data["files"]], right=(1,))
    return "\n".join(out)


def _evr(p: dict) -> str:
    epoch = f"{p['epoch']}:" if str(p.get("epoch") or "0") != "0" else ""
    return f"{epoch}{p['version']}-{p['release']}"


@main.command()
@manifest_arg
@cache_option
def images(manifest: Path, cache_dir: Path | None) -> None:
    """Print the image list: Kubernetes' own, the CNI's, and spec.images."""
    from .build import resolve_inputs
    from .fetch.http import make_session
    from .manifest import load_manifest

    cache = _cache(cache_dir)
    m = load_manifest(manifest, cache.root)
    try:
        refs = resolve_inputs(m, cache, make_session()).image_refs
    finally:
        cache.close_scratch()  # a read-only cache's temporary files
    for ref in refs:
        click.echo(ref)


@main.command()
@manifest_arg
@cache_option
@insecure_option
def lock(manifest: Path, cache_dir: Path | None, insecure: tuple[str, ...]) -> None:
    """Pin every input (RPM NEVRA + sha256, image digests, file sha256) in MANIFEST.lock."""
    from .build import lock as make_lock
    from .manifest import load_manifest

    cache = _cache(cache_dir)
    path, data = make_lock(load_manifest(manifest, cache.root), cache, stages=_stages(), insecure=insecure)
    click.echo(f"wrote {path}: {len(data['packages'])} packages, {len(data['images'])} images, "
               f"{len(data['files'])} files")


@main.command()
@manifest_arg
@cache_option
@insecure_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Directory the bundle is written to.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel downloads.")
@click.option("--locked", is_flag=True, help="Fetch exactly what MANIFEST.lock pins (no solving, no tag lookups).")
@click.option("--format", "fmt", type=click.Choice(["tar.gz", "tar", "tar.xz", "dir"]), default="tar.gz",
              show_default=True, help="tar.gz unpacks on any host (CentOS 7 has no zstd); dir is for development.")
@click.option("--sign", "sign_key", metavar="KEYID", help="Sign SHA256SUMS with this GPG key (detached, armored).")
@click.option("--split-size", metavar="SIZE", help="Also cut the tarball into parts of at most SIZE (e.g. 4G, 4095M).")
@click.option("--delta-from", "delta_from", metavar="STATE.json|OLD_BUNDLE",
              type=click.Path(exists=True, path_type=Path),
              help="Write a delta bundle (NAME-delta.tar.gz): leave out every RPM, image blob and file the site "
                   "already holds, by content digest, as measured by `./install.py export-state` there (or as "
                   "shipped in the bundle it installed). install.py completes it from the site.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def build(manifest: Path, cache_dir: Path | None, insecure: tuple[str, ...], output: Path, jobs: int, locked: bool,
          fmt: str, sign_key: str | None, split_size: str | None, delta_from: Path | None, quiet: bool,
          as_json: bool) -> None:
    """Resolve, download (verified, cached, resumable) and write the bundle atomically."""
    from .build import build as run_build
    from .manifest import load_manifest

    if split_size:
        from .bundle.split import parse_size

        parse_size(split_size)  # a bad size fails now, not after the downloads
        if fmt == "dir":
            raise click.UsageError("--split-size cuts a tarball; it does not go with --format dir.")
    cache = _cache(cache_dir)
    m = load_manifest(manifest, cache.root)
    r = run_build(m, output, cache, jobs=jobs, quiet=quiet or as_json, locked=locked, fmt=fmt,
                  sign_key=sign_key, insecure=insecure, delta_from=delta_from)
    split_index = None
    if split_size:
        from .bundle.split import split

        split_index = split(r.path, split_size)
    summary = {
        "bundle": str(r.path),
        "size": r.path.stat().st_size if r.path.is_file() else None,
        "sha256": r.sha256,
        "sha256File": str(r.sha256_path) if r.sha256_path else None,
        "unchanged": r.unchanged,
        "steps": {k: vars(v) for k, v in r.steps.items()},
        "downloaded": {"count": r.stats.downloaded, "bytes": r.stats.downloaded_bytes},
        "cacheHits": r.stats.cache_hits,
        "retries": r.stats.retries,
        "splitIndex": str(split_index) if split_index else None,
        "delta": r.delta,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    if quiet:
        return
    size = r.path.stat().st_size if r.path.is_file() else 0
    if r.unchanged:
        click.echo(f"unchanged: {r.path} ({_human(size)}) is the bundle this build would write; every byte of it "
                   "was checked against the sha256 recorded when it was written, so it was kept as it is")
    else:
        click.echo(f"wrote {r.path}" + (f" ({_human(size)})" if size else ""))
    if r.sha256 and r.sha256_path:
        click.echo(f"sha256 {r.sha256}  (also in {r.sha256_path.name}, for `sha256sum -c`)")
    click.echo(_summary_table(r.steps))
    click.echo(f"  downloaded {r.stats.downloaded} objects ({_human(r.stats.downloaded_bytes)}), "
               f"{r.stats.cache_hits} cache hits, {r.stats.retries} retries")
    if r.delta is not None:
        click.echo("  delta bundle: left out what the base holds: " + ", ".join(
            f"{v['count']} {k} ({_human(v['bytes'])})" for k, v in r.delta.items()))
    if r.inputs.from_media:
        click.echo(f"  {len(r.inputs.from_media)} dependencies are taken from the install media (not shipped)")
    if split_size and split_index:
        _split_and_report(r.path, split_size, split_index)


def _summary_table(steps: dict[str, StepStat]) -> str:
    """Fixed rows; `objects` (RPMs, files, image blobs asked of the cache) and `cache hits` share one unit."""
    rows = [("step", "what", "size", "time", "objects", "cache hits")]
    for name, st in steps.items():
        rows.append((name, f"{st.count} {st.unit}".strip(), _human(st.bytes) if st.bytes else "-",
                     f"{st.seconds:.1f} s", str(st.objects) if st.objects else "-",
                     str(st.cache_hits) if st.objects else "-"))
    from .table import columns

    return "\n".join(columns(rows, right=(2, 3, 4, 5)))


@main.group()
def cache() -> None:
    """Inspect or prune the download cache."""


@cache.command("info")
@cache_option
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is and how big."""
    c = _cache(cache_dir)
    count, total = c.size()
    click.echo(f"{c.root}: {count} objects, {_human(total)}")


@cache.command("prune")
@cache_option
@click.option("--older-than", "days", type=click.FloatRange(min=0), default=None, metavar="DAYS",
              help="Only remove objects no build has used for DAYS days [default: remove everything].")
def cache_prune(cache_dir: Path | None, days: float | None) -> None:
    """Remove cached objects (all, or those unused for DAYS) and leftovers of interrupted builds."""
    from .fetch.prune import prune

    r = prune(_cache(cache_dir), days)
    click.echo(f"removed {r.removed} objects, freed {_human(r.freed)}")
    if r.live_builds:
        click.echo(f"{r.live_builds} build(s) running on this cache: kept the {r.kept_for_builds} objects they use "
                   "and their partial downloads; run prune again when they are done to clear those.")


# ---- bundle review and integrity: verify, inspect, diff, split, join ----------------------------------------------

bundle_arg = click.argument("bundle", type=click.Path(exists=True, path_type=Path))


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="ASCII-armored public key: SHA256SUMS.asc must be a valid signature by it.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def verify(bundle: Path, key: Path | None, as_json: bool) -> None:
    """Check a bundle tarball or unpacked directory against SHA256SUMS (and its signature with --key).

    Reads a tarball once without extracting it; unlisted files are refused without being read. Names every bad
    file. Exit code 0: intact; 1: damaged or tampered (or not a bundle at all), do not install from it; 2: BUNDLE
    or --key does not exist or cannot be read, or a bad option.
    """
    from .bundle.verify import verify as run_verify
    from .progress import ByteProgress

    total = bundle.stat().st_size if bundle.is_file() else 0
    with ByteProgress(total, "verifying", enabled=bool(total) and not as_json) as bar:
        report = run_verify(bundle, key=key, progress=bar.callback if total else None)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.format())
    sys.exit(report.exit_code)


@main.command("inspect")
@bundle_arg
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_cmd(bundle: Path, as_json: bool) -> None:
    """What a bundle contains, from its bundle.json (fast: reads only the start of the tarball; checks nothing)."""
    from .bundle.inspect import format_inspect, inspect

    summary = inspect(bundle)
    click.echo(json.dumps(summary, indent=2) if as_json else format_inspect(summary))


@main.command("diff")
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff_cmd(old: Path, new: Path, as_json: bool) -> None:
    """Packages, images and files that changed from bundle OLD to bundle NEW (for change review)."""
    from .bundle.diff import diff, format_diff

    d = diff(old, new)
    click.echo(json.dumps(d, indent=2) if as_json else format_diff(d))


@main.command("sbom")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["spdx", "cyclonedx"]), default="spdx", show_default=True,
              help="SPDX 2.3 JSON or CycloneDX 1.6 JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the document to FILE (atomically) instead of printing it.")
def sbom_cmd(bundle: Path, fmt: str, output: Path | None) -> None:
    """The SBOM of a bundle (tarball or directory): every RPM, image, file and the installer, with digests.

    Generated from the bundle's bundle.json; for an intact bundle the bytes are those of the document it carries
    (sbom/bundle.spdx.json, sbom/bundle.cdx.json). Exit code 1: not a bundle, or damaged; 2: BUNDLE does not
    exist.
    """
    from .progress import ByteProgress
    from .sbom import render
    from .sbom.source import bundle_inventory

    total = bundle.stat().st_size if bundle.is_file() else 0  # a tarball is read once, start to end
    with ByteProgress(total, "reading", enabled=bool(total)) as bar:
        inventory = bundle_inventory(bundle, progress=bar.callback if total else None)
    data = render(inventory, fmt)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    from .bundle.sums import atomic_write_bytes

    try:
        if output.exists() and not output.is_file():  # /dev/stdout, a FIFO: write into it, never replace it
            with open(output, "wb") as f:
                f.write(data)
        else:
            atomic_write_bytes(output, data)
    except OSError as e:
        raise BundlerError(f"cannot write {output} ({e.strerror}): check that its directory exists and is "
                           "writable, or print to standard output without -o.") from None
    click.echo(f"wrote {output} ({fmt}, {_human(len(data))})", err=True)

@main.command("push")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, metavar="REGISTRY[/PREFIX]",
              help="Target registry host[:port], optionally a path such as a Harbor project.")
@click.option("--ca", type=click.Path(path_type=Path), default=None, help="CA certificate (PEM) of the registry.")
@click.option("--credentials", type=click.Path(path_type=Path), default=None,
              help="File with user:password, or a Docker config.json (default: spec.registries, then docker login).")
@click.option("--registries", "registries_from", type=click.Path(path_type=Path), default=None, metavar="MANIFEST",
              help="Take TLS trust and credentials from this manifest's spec.registries.")
@click.option("--insecure", is_flag=True, help="Plain HTTP or unverified TLS for the target registry.")
@click.option("--image", "only", multiple=True, metavar="REF", help="Push only this image (repeatable).")
@click.option("--dry-run", is_flag=True, help="Only report what is missing in the registry; send nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No per-image progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def push_cmd(bundle: Path, to: str, ca: Path | None, credentials: Path | None, registries_from: Path | None,
             insecure: bool, only: tuple[str, ...], dry_run: bool, quiet: bool, as_json: bool) -> None:
    """Copy BUNDLE's images (tarball or unpacked directory) into a registry of yours.

    Images land at REGISTRY[/PREFIX]/<upstream host>/<repository>:<tag> (what `install.py --registry` points
    the runtime at). Only missing blobs and manifests are sent (HEAD first, shared layers mounted), manifests
    and indexes keep their exact bytes (pull by digest works, multi-arch intact), tags are kept; run it again
    to resume. Exit code 0: done; 1: the registry cannot be reached, is not trusted or refused; 2: bad options.
    """
    from .registry.push import UsageError, make_pusher, open_layout, parse_target

    if ca is not None and insecure:
        raise UsageError(f"--ca {ca} and --insecure contradict each other: --ca verifies the registry's certificate "
                         "with that CA, --insecure does not verify it. Give one of them.")
    target = parse_target(to)
    settings = {}
    if registries_from is not None:
        from .manifest import load_manifest

        settings = dict(load_manifest(registries_from).registries)
    say = (lambda _: None) if quiet or as_json else (lambda text: click.echo(text, err=True))
    pusher = make_pusher(target, ca, credentials, settings, insecure, progress=say)
    with open_layout(bundle) as layout:
        names = {ref for ref, _ in layout.images()}
        unknown = sorted(set(only) - names)
        if unknown:
            raise UsageError(f"--image {', '.join(unknown)}: not in the bundle. It has: {', '.join(sorted(names))}.")
        pusher.ping()
        stats = pusher.push(layout, set(only) or None, dry=dry_run)
    if as_json:
        click.echo(json.dumps({"target": str(target), "dry_run": dry_run, **stats.to_json()}, indent=2))
    elif dry_run:
        click.echo(f"{stats.images} image(s): {stats.manifests_put} manifest(s) and {len(stats.missing)} blob(s) "
                   f"({_human(sum(stats.missing.values()))}) missing in {target}; nothing was sent.")
    else:
        click.echo(f"pushed {stats.images} image(s) to {target}: {stats.blobs_uploaded} blob(s) uploaded "
                   f"({_human(stats.bytes_uploaded)}), {stats.blobs_mounted} mounted, {stats.blobs_present} already "
                   f"there; {stats.manifests_put} manifest(s) written, {stats.manifests_present} already there.")


def _split_and_report(tarball: Path, size: str, index: Path | None = None) -> None:
    from .bundle.split import FAT32_MAX, parse_size, read_index, split

    index = index or split(tarball, size)
    data = read_index(index)
    for part in data["parts"]:
        click.echo(f"  {part['name']}  {_human(part['size'])}")
    n = len(data["parts"])
    click.echo(f"wrote {n} part{'s' if n != 1 else ''}, {index.name}, {tarball.name}.parts.sha256, "
               f"{tarball.name}.sha256")
    if parse_size(size) > FAT32_MAX and len(data["parts"]) > 1:
        click.echo("note: FAT32 cannot hold files of 4 GiB or more; use --size 4095M for FAT32 media.", err=True)
    click.echo("Copy all of them. On the other side, in the directory holding them, run:")
    click.echo(f"  {data['join']}")


@main.command("split")
@click.argument("tarball", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--size", required=True, metavar="SIZE",
              help="Largest part: bytes or K/M/G/T (1024-based; FAT32 holds at most 4095M), KB/MB/GB (1000-based).")
def split_cmd(tarball: Path, size: str) -> None:
    """Cut TARBALL into numbered parts for size-limited media; prints the one command that joins and checks them."""
    _split_and_report(tarball, size)


@main.command("join")
@click.argument("index", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def join_cmd(index: Path) -> None:
    """Check the parts listed in INDEX (<tarball>.parts.json), join them, and check the joined tarball."""
    from .bundle.split import join

    click.echo(f"wrote {join(index)} (every part and the whole match {index.name})")


if __name__ == "__main__":
    main()
