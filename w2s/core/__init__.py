"""Core ML: the shared configuration sections, data, models, losses, the training loop, metrics,
the content-addressed artifact cache and the typed references passed between steps. It imports
nothing from the rest of the library."""
