"""Programs judged by their tests: the CodeContests checker, the sandbox it runs them in,
and the output comparison."""
