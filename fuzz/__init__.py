"""Coverage-guided fuzzing (atheris) of the decoders a client reaches: ``make fuzz``."""
