"""Job specs for the worker: parsing, validation and retry planning.

A job spec is a JSON object:

    {"name": "resize-images", "command": ["convert", "in.png", "out.png"],
     "timeout": "5m", "retries": 3, "backoff": "10s", "env": {"QUALITY": "80"}}

Only ``name`` and ``command`` are required. Durations are strings like "90s", "5m", "1h30m".
"""

import json
import re
from dataclasses import dataclass, field
from typing import Dict, List

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h))+$")
DURATION_PART = re.compile(r"(\d+)(ms|s|m|h)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MAX_RETRIES = 10
MAX_BACKOFF_SECONDS = 15 * 60
ALLOWED_FIELDS = {"name", "command", "timeout", "retries", "backoff", "env"}


class JobSpecError(ValueError):
    """A job spec was refused; ``problems`` lists every reason, not just the first."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Job:
    name: str
    command: List[str]
    timeout_seconds: float = 300.0
    retries: int = 0
    backoff_seconds: float = 5.0
    env: Dict[str, str] = field(default_factory=dict)

    def retry_delays(self):
        """Seconds to wait before each retry: exponential backoff, capped at 15 minutes."""
        return [min(self.backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS) for attempt in range(self.retries)]


def parse_duration(text):
    """Seconds in a duration string such as "1h30m" or "250ms"; ValueError if malformed."""
    if not isinstance(text, str) or not DURATION.match(text):
        raise ValueError(f"invalid duration {text!r}; use e.g. 30s, 5m, 1h30m")
    return sum(int(n) * UNIT_SECONDS[unit] for n, unit in DURATION_PART.findall(text))


def parse_job(source):
    """A Job from a JSON string or an already decoded dict; raises JobSpecError listing all problems."""
    if isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except json.JSONDecodeError as error:
            raise JobSpecError([f"not JSON: {error.msg} at line {error.lineno}"]) from None
    if not isinstance(source, dict):
        raise JobSpecError(["a job spec must be a JSON object"])

    problems = [f"unknown field {key!r}" for key in sorted(set(source) - ALLOWED_FIELDS)]

    name = source.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append("name must be lowercase letters, digits and '-', starting with a letter")

    command = source.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command):
        problems.append("command must be a non-empty list of non-empty strings")

    durations = {}
    for key, default in (("timeout", "5m"), ("backoff", "5s")):
        try:
            durations[key] = parse_duration(source.get(key, default))
        except ValueError as error:
            problems.append(f"{key}: {error}")

    retries = source.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        problems.append(f"retries must be an integer from 0 to {MAX_RETRIES}")

    env = source.get("env", {})
    if not isinstance(env, dict):
        problems.append("env must be an object of strings")
    else:
        for key, value in env.items():
            if not ENV_NAME.match(key) or not isinstance(value, str):
                problems.append(f"env.{key}: names are [A-Za-z_][A-Za-z0-9_]* and values are strings")

    if problems:
        raise JobSpecError(problems)
    return Job(
        name=name,
        command=list(command),
        timeout_seconds=durations["timeout"],
        retries=retries,
        backoff_seconds=durations["backoff"],
        env=dict(env),
    )
