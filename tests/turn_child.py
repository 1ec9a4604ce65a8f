"""A child process for the tests of ``start_child``'s turns (tests/test_children.py): it
adds its process id to the file named by ``TURN_CHILD_OUT`` as it starts, then runs until
SIGTERM or until the process that started it has gone, as the app's children do."""

from __future__ import annotations

import argparse
import os
import time

from pacs_app.core.children import parent_gone

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()
    with open(os.environ["TURN_CHILD_OUT"], "a") as out:
        out.write(f"{os.getpid()}\n")
    while not parent_gone(args.parent_pid):
        time.sleep(0.2)
