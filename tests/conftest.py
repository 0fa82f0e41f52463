"""Every test process (and the subprocesses tests start) uses a private, empty cache folder."""
import os
import tempfile

os.environ["JITBRIDGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="jitbridge-test-cache-")
os.environ.pop("JITBRIDGE_RECORD", None)

import pytest  # noqa: E402

from jitbridge import config  # noqa: E402

config.reload()


@pytest.fixture
def cache_dir(tmp_path):
    """A fresh cache folder for one test, also exported to the subprocesses it starts."""
    folder = tmp_path / "cache"
    old = os.environ["JITBRIDGE_CACHE_DIR"]
    os.environ["JITBRIDGE_CACHE_DIR"] = str(folder)
    with config.scope(cache_dir=folder):
        yield folder
    os.environ["JITBRIDGE_CACHE_DIR"] = old
