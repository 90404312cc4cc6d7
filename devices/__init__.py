"""Hardware and actors that live in simulated time: accelerators, cost models, systems."""
