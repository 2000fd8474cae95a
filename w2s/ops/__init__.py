"""Operations: tracking, the model registry, promotion, lineage, DVC versioning, reproduction,
validation gates, project scaffolding and serving. It never imports the pipeline."""
