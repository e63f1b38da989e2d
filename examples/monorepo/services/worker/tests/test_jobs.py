import json
import unittest

from worker.jobs import Job, JobSpecError, parse_duration, parse_job


class ParseDurationTest(unittest.TestCase):
    def test_units_add_up(self):
        self.assertEqual(parse_duration("90s"), 90)
        self.assertEqual(parse_duration("5m"), 300)
        self.assertEqual(parse_duration("1h30m"), 5400)
        self.assertAlmostEqual(parse_duration("250ms"), 0.25)

    def test_malformed_durations_are_refused(self):
        for bad in ("", "5", "m5", "1.5h", "10 s", "-1s", 30, None):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                parse_duration(bad)


class ParseJobTest(unittest.TestCase):
    def test_minimal_spec_gets_defaults(self):
        job = parse_job('{"name": "nightly-report", "command": ["report", "--daily"]}')
        self.assertEqual(job, Job(name="nightly-report", command=["report", "--daily"]))
        self.assertEqual(job.timeout_seconds, 300)
        self.assertEqual(job.retry_delays(), [])

    def test_full_spec(self):
        job = parse_job({
            "name": "resize-images",
            "command": ["convert", "in.png", "out.png"],
            "timeout": "1h",
            "retries": 3,
            "backoff": "10s",
            "env": {"QUALITY": "80"},
        })
        self.assertEqual(job.timeout_seconds, 3600)
        self.assertEqual(job.retry_delays(), [10, 20, 40])
        self.assertEqual(job.env, {"QUALITY": "80"})

    def test_backoff_is_capped_at_fifteen_minutes(self):
        job = parse_job({"name": "flaky", "command": ["true"], "retries": 10, "backoff": "1m"})
        self.assertEqual(job.retry_delays()[-1], 900)
        self.assertEqual(job.retry_delays()[:5], [60, 120, 240, 480, 900])

    def test_every_problem_is_reported(self):
        with self.assertRaises(JobSpecError) as caught:
            parse_job({"name": "Bad Name", "command": [], "retries": True, "timeout": "soon", "colour": "red"})
        problems = caught.exception.problems
        self.assertEqual(len(problems), 5, problems)
        self.assertIn("unknown field 'colour'", problems)
        self.assertTrue(any(p.startswith("timeout:") for p in problems))

    def test_env_must_be_strings_with_valid_names(self):
        with self.assertRaises(JobSpecError) as caught:
            parse_job({"name": "env", "command": ["env"], "env": {"1BAD": "x", "GOOD": 1}})
        self.assertEqual(len(caught.exception.problems), 2)

    def test_non_objects_and_bad_json_are_refused(self):
        for source in ("[1, 2]", "{not json", json.dumps("text")):
            with self.subTest(source=source), self.assertRaises(JobSpecError):
                parse_job(source)


if __name__ == "__main__":
    unittest.main()
