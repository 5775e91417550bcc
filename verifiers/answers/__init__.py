"""Checkers of a final answer against a reference: GSM8K numbers and MATH expressions."""
