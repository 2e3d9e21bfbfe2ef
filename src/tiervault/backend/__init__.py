"""Storage backends: one small async interface (``base.Backend``) and its implementations."""
