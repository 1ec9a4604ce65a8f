"""AI analysis: plugins, the pipeline and its jobs. Importing this package does not import torch."""
