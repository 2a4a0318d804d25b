"""Fine-tuning SAM on annotated slices: data (``data``), losses (``losses``), the trainer
(``trainer``) and evaluation (``evaluate``)."""
