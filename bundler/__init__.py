"""airgap-bundler: offline Kubernetes bundles for EL7-EL10 hosts."""

__version__ = "0.1.0"
