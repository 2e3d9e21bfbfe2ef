"""The repository layer: keys, index, packer, snapshots, items, on top of any ``Backend``."""
