"""Models: the TF-IDF weak supervisor and transformer text classifiers."""
