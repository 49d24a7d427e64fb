"""Datasets: the registry (``spec``), the canonical cache file (``store``), the in-memory
``Dataset`` with its samplers, derived variants, and the sources that make cache files."""
