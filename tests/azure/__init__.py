"""Tests against Azurite, the Azure Blob Storage emulator."""
