"""Daemonless registry client (Registry HTTP API v2 / OCI distribution): references, auth, transport, manifests."""
