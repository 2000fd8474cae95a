"""Label-refining W2S methods: each turns the weak supervisor's predictions into new soft labels
before the student trains (see `w2s.refine.run`)."""
