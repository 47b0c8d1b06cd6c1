"""./install.py upgrade: move an installed cluster to the Kubernetes version of a newer bundle, one minor at a
time (the bundle's hops), in the order kubeadm documents, resuming from the cluster's own state after a failure.

path.py: which versions to go through (pure); state.py: what the cluster runs now (facts read from it);
preflight.py: the refusals before any change; phases.py: the steps; run.py: the operation and its record.
"""
