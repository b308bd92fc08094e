"""Red teaming: attack suites that run against a live gateway, and what they found."""
