"""Shared fixtures: the real host in process (``host``) and the real server on loopback (``server``)."""
import pytest


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
