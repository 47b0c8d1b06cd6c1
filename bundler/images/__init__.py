"""Which images a bundle needs, and pulling them (registries or the local Docker daemon) into the OCI store."""
