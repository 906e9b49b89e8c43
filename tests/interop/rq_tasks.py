"""RQ jobs for the Palisade interop test (tests/interop_z4j.rs).

Plain functions; the test enqueues them through produce.py and watches what
the real z4j-rq agent reports to Palisade.
"""

import os


def add(x, y):
    return x + y


def boom(reason):
    raise ValueError(f"boom: {reason}")


def flaky(marker_path):
    """Fails the first time it runs, succeeds once the marker file exists.

    The marker lives in the test's temporary directory, so a retry of the
    same job (RQ requeues it by reference, same job id) succeeds.
    """
    if not os.path.exists(marker_path):
        with open(marker_path, "w", encoding="utf-8") as f:
            f.write("first attempt failed\n")
        raise RuntimeError("flaky: first attempt fails on purpose")
    return "recovered"


def charge(card, api_key):
    # The secret arguments reach the job description (RQ's call string);
    # nothing of them is returned or raised.
    return {"charged": True, "last4": card[-4:]}


def parked(n):
    # Enqueued on a queue no worker consumes; purged by the test.
    return n
