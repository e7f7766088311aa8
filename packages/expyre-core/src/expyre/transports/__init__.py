"""Built-in transport plugins: ``local`` (this machine) and ``ssh`` (paramiko)."""
