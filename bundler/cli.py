"""Command line: a thin layer over the library; it parses options, prints, and maps errors to exit codes."""

from __future__ import annotations

import json
import sys
import textwrap
from functools import wraps
from pathlib import Path

import click

from . import __version__
from .errors import BundlerError
from .fetch.cache import Cache, default_cache_dir


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def operator_errors(fn):  # noqa: ANN001, ANN201
    """Print BundlerErrors as one wrapped paragraph and exit non-zero; no traceback for operator mistakes."""

    @wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return fn(*args, **kwargs)
        except BundlerError as e:
            click.echo(textwrap.fill(f"error: {e}", width=100, break_long_words=False, break_on_hyphens=False),
                       err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished downloads stay in the cache; run the same command to resume.", err=True)
            sys.exit(130)

    return wrapper


cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Content-addressed download cache [default: $XDG_CACHE_HOME/airgap-bundler].",
)
manifest_arg = click.argument("manifest", type=click.Path(path_type=Path))


def _cache(cache_dir: Path | None) -> Cache:
    return Cache(cache_dir or default_cache_dir())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bundler")
def main() -> None:
    """Build offline Kubernetes bundles for EL7-EL10 hosts with no internet."""


@main.command()
@manifest_arg
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@operator_errors
def plan(manifest: Path, cache_dir: Path | None, as_json: bool) -> None:
    """Resolve everything and print what a build would fetch, with sizes (downloads no payload)."""
    from .build import plan_json, resolve_packages
    from .manifest import load_manifest

    m = load_manifest(manifest)
    closure = resolve_packages(m, _cache(cache_dir))
    data = plan_json(m, closure)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"bundle {data['bundle']}  (prefer: {m.prefer})")
    click.echo(f"packages to ship: {data['totals']['packages']}, {_human(data['totals']['bytes'])}")
    for p in data["packages"]:
        click.echo(f"  {p['name']}-{p['version']}-{p['release']}.{p['arch']:<8} {p['repo']:<14} {_human(p['size'])}")
    if data["fromMedia"]:
        click.echo(f"taken from the install media (not shipped): {len(data['fromMedia'])}")
        for p in data["fromMedia"]:
            click.echo(f"  {p['name']}-{p['version']}-{p['release']}.{p['arch']}")


@main.command()
@manifest_arg
@cache_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Directory the bundle is written to.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel downloads.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@operator_errors
def build(manifest: Path, cache_dir: Path | None, output: Path, jobs: int, quiet: bool) -> None:
    """Resolve, download (verified, cached, resumable) and write the bundle."""
    from .build import build as run_build
    from .manifest import load_manifest

    m = load_manifest(manifest)
    result = run_build(m, output, _cache(cache_dir), jobs=jobs, quiet=quiet)
    if quiet:
        return
    s = result.stats
    shipped = result.closure.shipped
    click.echo(f"wrote {result.path}")
    click.echo(f"  packages: {len(shipped)} shipped ({_human(sum(p.size for p in shipped))}), "
               f"{len(result.closure.from_media)} from the media")
    click.echo(f"  downloads: {s.downloaded} ({_human(s.downloaded_bytes)}), cache hits: {s.cache_hits}, "
               f"retries: {s.retries}")
    click.echo("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()))


if __name__ == "__main__":
    main()
