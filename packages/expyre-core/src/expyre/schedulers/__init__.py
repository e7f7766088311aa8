"""Built-in scheduler plugins: ``direct`` (a background process, no queue)."""
