"""Runtime sessions: the latest snapshot per workflow-run node scope, and wait-and-retire."""
