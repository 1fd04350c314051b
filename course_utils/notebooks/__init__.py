"""`course build` and `course run`: lesson notebooks as data, learner copies, Colab cells, execution."""
