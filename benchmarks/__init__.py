"""Speed, measured side by side with the peers: ``python -m benchmarks [--quick] [--json FILE]``.

Each module here (not starting with ``_``) is one workload with

    ID = "a"                           # the letter the issues use
    TITLE = "what is timed"
    def run(quick: bool) -> list[dict] # records {workload, implementation, seconds, ...}

``implementation`` is one of ``jaxgrad``, ``numpy``, ``torch`` (torch only when installed).
``_harness.py`` holds the timer and the machine's float32 matmul rate.
"""
