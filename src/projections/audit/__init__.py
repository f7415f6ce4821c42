"""The audit trail: the event table read directly (history, feed, state as of), and the guarantees that make
it evidence (append-only, hash-chained streams), installed by ``schema.secure``.
"""
