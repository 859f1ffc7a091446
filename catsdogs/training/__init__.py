"""Stage 2, training: one seeded run (train), the variant x seed matrix and its pre-flight
checks (runner), what the machine and software are (provenance, devices), the speed
benchmark (speed), and epochs as pytest-benchmark rounds (epoch_rounds)."""
