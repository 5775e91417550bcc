"""The ``report`` command's output: tables, figures and the HTML page of one or more runs."""
