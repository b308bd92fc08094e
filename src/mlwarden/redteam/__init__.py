"""Red teaming: attack suites against a live gateway, and the evidence they leave."""
