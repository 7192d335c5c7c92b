"""Shared fixtures: the real host in process (``host``) and the real server on loopback (``server``); and the rule
that keeps the test tiers honest: a test that uses the host, the server or the browser carries that marker, so
``make test-unit`` (``-m "not host and not server and not browser"``) never starts any of them."""
import pytest

# fixture -> the marker a test using it must carry
TIER_OF_FIXTURE = {"host": "host", "server": "server", "frontend": "browser"}


def pytest_collection_modifyitems(config, items):
    missing = []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        for fixture, marker in TIER_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()) and marker not in marks:
                missing.append(f"{item.nodeid} uses '{fixture}' but is not marked '{marker}'")
    if missing:
        raise pytest.UsageError("test tier markers missing (add pytestmark = pytest.mark.<tier>):\n  "
                                + "\n  ".join(missing))


def pytest_terminal_summary(terminalreporter):
    """The figures the tests measured (tests/tcd_figures.py), after the results."""
    import tcd_figures
    for title, lines in tcd_figures.sections():
        terminalreporter.section(title, sep="-")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def host():
    from tcd_host import get_host
    return get_host()


@pytest.fixture(scope="session")
def server():
    from tcd_server import ComfyServer
    srv = ComfyServer()
    srv.build_checkpoint(0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def frontend(server):
    """The host's own frontend in headless Debian Chromium, one page per test module."""
    from tcd_browser import Frontend, chromium_path
    if chromium_path() is None:
        pytest.fail("Debian chromium is not installed: scripts/env.sh ensure_chromium installs it (apt)")
    fe = Frontend(server.url)
    yield fe
    fe.close()
