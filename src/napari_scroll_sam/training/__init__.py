"""Fine-tuning SAM on annotated slices: data (``data``), augmentation (``augment``), losses
(``losses``), low-rank adapters (``lora``), the trainer (``trainer``: the loop, with ``config``,
``forward``, ``schedule``, ``validation``, ``checkpoints``), a whole run as one generator
(``job``: model loaded or copied, trainer built, its reports), evaluation (``evaluate``) and
synthetic training data (``synthetic``)."""
