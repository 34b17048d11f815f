"""onceproof's harness: config, runtimes, faults, workers, history, CLI and reports."""
