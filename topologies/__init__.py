"""The topology catalogue: one TOML recipe per file, read by :mod:`recur.catalogue`."""
