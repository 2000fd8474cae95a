"""The pipeline: its step functions and their one sequence, strong training, label publishing,
the library runner, the DVC stages, weak-model selection, sweeps and reports."""
