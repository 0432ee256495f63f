"""forum-witness: a C2SP tlog-witness that cosigns checkpoints (see service.py)."""
