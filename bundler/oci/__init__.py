"""The bundle's image store: one OCI image layout that skopeo, crane, podman and containerd can all read."""
