"""Loaded first: puts tests/ on sys.path so every test can import `shared_paths`."""

pytest_plugins = ["devcluster_fixture"]
