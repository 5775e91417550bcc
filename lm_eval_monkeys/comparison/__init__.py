"""Runs compared on the same problems: paired differences, leaderboards and the CI gate."""
