#!/usr/bin/env python3
"""Runs several reference scripts in one Python process (each start costs seconds of imports).

    python run_jobs.py < jobs.json

jobs.json: [{"script": "hf_logits.py", "args": ["--model", DIR, ...]}, ...], scripts in this
           folder that have a main() returning an exit code and print one JSON line last.
stdout:    one JSON line: the list of each job's last stdout line, parsed, in order.
A job that exits non-zero stops the run, naming the script and its arguments.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    results = []
    for job in json.load(sys.stdin):
        script = job["script"]
        module = importlib.import_module(os.path.splitext(script)[0])
        sys.argv = [module.__file__, *job["args"]]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = module.main()
        if rc:
            raise SystemExit(f"{script} {' '.join(job['args'])} exited {rc}")
        results.append(json.loads(out.getvalue().strip().splitlines()[-1]))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
