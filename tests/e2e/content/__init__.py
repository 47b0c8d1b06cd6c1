"""Content of the e2e upstream for the multi-node rig (issue 6): yum repos, download site, images.

    build_e2e_repos(dest) -> {"media", "media-baseos", "media-appstream", "docker-ce", "kubernetes": Path}
    build_e2e_repos_cached(cache_root) -> BuiltRepos (keyed by a content hash)
    build_e2e_site(dest) -> tests.upstream.stack.Site
    push_e2e_images(stack, version, cni) -> {ref: digest}

See README.md in this directory for what each RPM carries and how the test doubles work.
"""

from .images import e2e_image_layers, push_e2e_images
from .repos import (
    E2E_REPOS,
    K8S_VERSION,
    MEDIA_REPOS,
    YUM_REPOS,
    BuiltRepos,
    build_e2e_repos,
    build_e2e_repos_cached,
    repo_urls,
)
from .site import build_e2e_site, calico_yaml

__all__ = ["E2E_REPOS", "K8S_VERSION", "MEDIA_REPOS", "YUM_REPOS", "BuiltRepos", "build_e2e_repos",
           "build_e2e_repos_cached", "build_e2e_site", "calico_yaml", "e2e_image_layers", "push_e2e_images",
           "repo_urls"]
