"""Load tests and benchmarks: Locust users and shapes, the runner and its report."""
