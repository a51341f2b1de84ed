"""The campaigns service: not built yet (see the open issues).

The all-in-one app mounts it once its main.py exists.
"""
