"""`course check`: gather submissions, run them, evaluate each exercise, write reports."""
