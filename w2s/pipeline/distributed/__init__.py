"""Strong training on the DeepSpeed engine in N ranks: config generation, the per-rank backend,
the worker entry point and the launcher that starts and watches the ranks."""
