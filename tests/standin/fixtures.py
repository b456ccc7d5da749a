"""The ``standin`` pytest fixture: a started :class:`~standin.server.DiscordStandin` on a free port.

At teardown it calls ``assert_clean()`` (so a test fails if the bot sent anything Discord would
reject, hit a route the stand-in does not serve, or crashed a handler) and stops the server.

Register it for the whole suite in ``tests/conftest.py``::

    pytest_plugins = ["standin.fixtures"]

or import it into one test module: ``from standin.fixtures import standin_fixture  # noqa: F401``.
The function is named ``standin_fixture`` (the fixture is ``standin``) so that test parameters
named ``standin`` do not shadow an imported name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import DiscordStandin


@pytest_asyncio.fixture(name="standin")
async def standin_fixture() -> AsyncIterator[DiscordStandin]:
    """A running stand-in with the default world; fails the test at teardown on violations."""
    async with DiscordStandin() as server:
        yield server
        server.assert_clean()
