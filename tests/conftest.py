pytest_plugins = ["tests.upstream.fixtures"]
