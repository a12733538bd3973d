__version__ = "0.1.0.dev0"
"""The version of mlprobe (PEP 440)."""
