"""SWE-bench patches graded by the instance's tests: the checker, the local runner, its
environments, the harness's specs and the interpreters they need."""
