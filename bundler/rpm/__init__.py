"""RPM side of the builder: repo metadata, modularity, solving, downloading, writing the bundle repo."""
