"""Fine-tuning SAM on annotated slices: data (``data``), augmentation (``augment``), losses
(``losses``), low-rank adapters (``lora``), the trainer (``trainer``: the loop, with ``config``,
``forward``, ``schedule``, ``validation``, ``checkpoints``), evaluation (``evaluate``) and
synthetic training data (``synthetic``)."""
