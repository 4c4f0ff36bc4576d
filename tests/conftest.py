pytest_plugins = ["tests.broker", "tests.stack"]
