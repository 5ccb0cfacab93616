"""Developer tools (not part of the runtime: not packaged, imported by nothing under engine/ or api/)."""
