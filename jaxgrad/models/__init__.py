"""Systems that evolve a state: each is a step ``(state, input) -> state``."""
