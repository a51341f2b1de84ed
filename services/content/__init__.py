"""The content service: not built yet (see the open issues); all-in-one mounts it once main.py exists."""
