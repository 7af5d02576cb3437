"""State storage: the backend protocol, restore judging, and the reference JSONL backend."""
