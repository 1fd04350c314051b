"""Lessons 01, 04-07 and 12: text data, encoders, Trainer recipes, NER, QA, evaluation, data quality."""
