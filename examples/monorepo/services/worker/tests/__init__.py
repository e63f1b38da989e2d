# A package, so `python3 -m unittest discover -s tests -t .` imports tests.* and worker.* from the project root.
