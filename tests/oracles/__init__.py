"""Test oracles: independent reference solutions the tests compare the generators against (not shipped in the package)."""
