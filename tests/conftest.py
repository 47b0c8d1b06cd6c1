pytest_plugins = ["tests.upstream.fixtures", "tests.e2e.rig_options"]
