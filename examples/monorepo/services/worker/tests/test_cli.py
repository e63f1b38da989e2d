import os
import tempfile
import unittest

from worker.__main__ import plan_file, scan


class ScanTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def test_plan_file(self):
        plan, problem = plan_file(self.write("ok.json", '{"name": "ok", "command": ["true"], "retries": 2}'))
        self.assertIsNone(problem)
        self.assertEqual(plan["retryDelaysSeconds"], [5, 10])
        plan, problem = plan_file(self.write("bad.json", '{"name": "ok"}'))
        self.assertIsNone(plan)
        self.assertIn("command must be", problem)

    def test_scan_reports_each_file_once_until_it_changes(self):
        path = self.write("a.json", '{"name": "a", "command": ["true"]}')
        self.write("notes.txt", "ignored")
        seen = {}
        self.assertEqual([plan["name"] for plan, _ in scan(self.dir.name, seen)], ["a"])
        self.assertEqual(scan(self.dir.name, seen), [])
        os.utime(path, ns=(0, 1))
        self.assertEqual(len(scan(self.dir.name, seen)), 1)


if __name__ == "__main__":
    unittest.main()
