"""The conformance kit: everything crashkit knows, run against any backend by one pytest
command (`pytest --crashkit-backend=module:BACKEND`), plus the broken variants that
prove the kit catches real bugs (`--crashkit-selftest`)."""
