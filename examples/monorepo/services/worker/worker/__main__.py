"""The worker's command line.

    python3 -m worker SPEC.json...        validate job specs, print each plan as JSON; exit 1 if any is refused
    python3 -m worker --watch DIR [SECS]  keep polling DIR for new or changed *.json specs (the container's mode)

Plans go to stdout, refusals to stderr.
"""

import json
import os
import signal
import sys
import time

from worker.jobs import JobSpecError, parse_job


def plan_file(path):
    """(plan, None) for a valid spec file, (None, reason) otherwise."""
    try:
        with open(path, encoding="utf-8") as handle:
            job = parse_job(handle.read())
    except (OSError, JobSpecError) as error:
        return None, f"{path}: {error}"
    return {"name": job.name, "command": job.command, "timeoutSeconds": job.timeout_seconds,
            "retryDelaysSeconds": job.retry_delays()}, None


def scan(directory, seen):
    """Plans/refusals for *.json files in `directory` that are new or changed since `seen` (updated in place)."""
    results = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if not entry.name.endswith(".json") or not entry.is_file():
            continue
        stamp = entry.stat().st_mtime_ns
        if seen.get(entry.path) != stamp:
            seen[entry.path] = stamp
            results.append(plan_file(entry.path))
    return results


def report(results):
    ok = True
    for plan, problem in results:
        if plan is not None:
            print(json.dumps(plan), flush=True)
        else:
            print(problem, file=sys.stderr, flush=True)
            ok = False
    return ok


def watch(directory, interval):
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    seen = {}
    while running:
        report(scan(directory, seen))
        time.sleep(interval)
    return 0


def main(args):
    if args[:1] == ["--watch"] and len(args) in (2, 3):
        return watch(args[1], float(args[2]) if len(args) == 3 else 10.0)
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if report([plan_file(path) for path in args]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
