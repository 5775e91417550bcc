"""lm-eval tasks: the task class, its data loaders, options and run record."""
