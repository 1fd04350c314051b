"""Lessons 02-03: pretrained CNN backbones, digits data, training loop and transfer recipes."""
