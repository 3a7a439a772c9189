"""Shared test setup.

Fixture modules are plain modules listed in `pytest_plugins`, one per concern, so each stays
small and a new concern (an app and HTTP client, a fake model server…) is one more module and one
more line here. `tests.db_fixtures` gives every test an isolated, migrated database on SQLite or,
when `STRATA_TEST_DATABASE_URL` is set, PostgreSQL; see its docstring. `tests.api_fixtures`
starts the app on that database and gives an authenticated client.
"""

pytest_plugins = [
    "tests.db_fixtures",
    "tests.api_fixtures",
    "tests.fake_openai",
    "tests.fake_anthropic",
    "tests.tool_servers",
    "tests.server_fixtures",
]
