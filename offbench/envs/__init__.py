"""Evaluation environments: offbench's own (Key-to-Door) and the factory that builds any of them."""
