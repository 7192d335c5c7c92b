"""The one error the LoRA planner raises."""


class TCDLoraError(ValueError):
    """A LoRA file that cannot be applied in full (the message names the file, what is wrong and what to do)."""
