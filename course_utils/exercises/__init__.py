"""One module of checkers per lesson, `exNN`, imported on demand by `course_utils.checks`."""
