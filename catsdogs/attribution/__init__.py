"""Attribution: when numerics change, say where. `probe` records a per-layer fingerprint of
each variant's training computation (probe, in the format of fileformat), `probe-diff`
decides where two of them first part (diff), and `bisect` searches package releases for the
one that changed it (bisect), in cached virtual environments (venvs)."""
