"""HTTP layer: the only package that imports FastAPI. Routes are thin; services do the work."""
