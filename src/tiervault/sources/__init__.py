"""What can be protected. Today: a folder tree (``folder``)."""
