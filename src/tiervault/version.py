"""The version of tiervault (what recovery points record as their writer, ``program``)."""

__version__ = "0.1.0"
