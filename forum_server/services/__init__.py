"""Thin servicers: decode, call the sequencer or store, encode.  Errors map in ``_calls``."""
