"""Files and binaries that ride along with the packages and images."""
